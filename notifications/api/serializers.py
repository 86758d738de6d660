"""Input and output shapes of the alerts API. Output never carries a secret, except the
generated signing secret in the create response (shown once)."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from notifications.messages import problem_document
from notifications.models import AlertRule, NotificationSink, Problem
from notifications.sinks import KINDS


class SinkInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    # A plain string (checked by the service, 422): an enum named "kind" would collide in the schema.
    kind = serializers.CharField(max_length=16, help_text=f"one of: {', '.join(KINDS)}")
    connection = serializers.CharField(max_length=128, required=False, allow_null=True, default=None,
                                       help_text="name of the smtp / slack / generic_http connection")
    settings = serializers.DictField(required=False, default=dict,
                                     help_text='email: {"to": [...], "from_address": ...}; slack: {"channel": ...}')
    secrets = serializers.DictField(child=serializers.CharField(max_length=2048), required=False, default=dict,
                                    help_text='slack_webhook: {"webhook_url": ...}; never returned')
    enabled = serializers.BooleanField(default=True)


class SinkUpdateInputSerializer(SinkInputSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty


class SinkOutputSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True, help_text=f"one of: {', '.join(KINDS)}")
    connection = serializers.SerializerMethodField()
    secrets_set = serializers.SerializerMethodField()

    class Meta:
        model = NotificationSink
        fields = ["id", "name", "kind", "connection", "settings", "enabled", "secrets_set", "created_at",
                  "updated_at"]

    def get_connection(self, sink: NotificationSink) -> str | None:
        return sink.connection.name if sink.connection else None

    def get_secrets_set(self, sink: NotificationSink) -> bool:
        return bool(sink.secret_ciphertext)


class SinkCreatedOutputSerializer(SinkOutputSerializer):
    signing_secret = serializers.CharField(required=False, help_text="the whsec_ secret of a webhook sink: shown once")

    class Meta(SinkOutputSerializer.Meta):
        fields = [*SinkOutputSerializer.Meta.fields, "signing_secret"]


class SinkTestOutputSerializer(serializers.Serializer):
    result = serializers.CharField()
    alert_id = serializers.CharField()
    error = serializers.CharField()


class RuleInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    events = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False)
    connection_types = serializers.ListField(child=serializers.CharField(max_length=32), required=False)
    connections = serializers.ListField(child=serializers.CharField(max_length=128), required=False,
                                        help_text="connection names; empty: every connection")
    sinks = serializers.ListField(child=serializers.IntegerField(), required=False,
                                  help_text="sink ids; empty: every enabled sink")
    reminder_interval_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=60)
    params = serializers.DictField(required=False)
    enabled = serializers.BooleanField(required=False)


class RuleUpdateInputSerializer(RuleInputSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class RuleOutputSerializer(serializers.ModelSerializer):
    connections = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    sinks = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = AlertRule
        fields = ["id", "name", "events", "connection_types", "connections", "sinks", "reminder_interval_seconds",
                  "params", "enabled", "created_at", "updated_at"]


class ProblemOutputSerializer(serializers.Serializer):
    def to_representation(self, instance: Problem) -> dict[str, Any]:
        return {**problem_document(instance), "acknowledged_by": instance.acknowledged_by}


class ProblemDetailOutputSerializer(ProblemOutputSerializer):
    def to_representation(self, instance: Problem) -> dict[str, Any]:
        return {**super().to_representation(instance), "history": instance.history}


class ProblemFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["pending", "open", "resolved", "live"], required=False)

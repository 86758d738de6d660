from __future__ import annotations

from typing import Any

from rest_framework import serializers

from webhooks.models import TriggerRule, WorkflowRun


class ActivityQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
    include_payload = serializers.BooleanField(default=False)


class ActivityEntryOutputSerializer(serializers.Serializer):
    delivery_id = serializers.IntegerField(allow_null=True)
    event_id = serializers.UUIDField(allow_null=True)
    event_type = serializers.CharField()
    outcome = serializers.CharField()
    reason = serializers.CharField()
    matched_secret = serializers.CharField()
    duplicates = serializers.IntegerField()
    received_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField(allow_null=True)
    runs = serializers.IntegerField()
    payload = serializers.JSONField(required=False)


class ActivityOutputSerializer(serializers.Serializer):
    connection = serializers.CharField()
    results = ActivityEntryOutputSerializer(many=True)


class TriggerRuleInputSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    enabled = serializers.BooleanField(default=True)
    connection = serializers.CharField(allow_null=True, required=False, default=None, max_length=128)
    event_type = serializers.CharField(max_length=200)
    conditions = serializers.JSONField(required=False, default=list)
    workflow = serializers.CharField(max_length=100)
    parameters = serializers.JSONField(required=False, default=dict)


class TriggerRuleUpdateInputSerializer(TriggerRuleInputSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty


class TriggerRuleOutputSerializer(serializers.ModelSerializer):
    connection = serializers.SerializerMethodField()

    class Meta:
        model = TriggerRule
        fields = ["id", "name", "enabled", "connection", "event_type", "conditions", "workflow", "parameters",
                  "created_at", "updated_at"]

    def get_connection(self, rule: TriggerRule) -> str | None:
        return rule.connection.name if rule.connection_id else None


class WorkflowRunFilterSerializer(serializers.Serializer):
    rule = serializers.CharField(required=False, max_length=100)
    status = serializers.ChoiceField(choices=WorkflowRun.Status.choices, required=False)
    connection = serializers.CharField(required=False, max_length=128)


class WorkflowRunOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = WorkflowRun
        fields = ["id", "rule_name", "workflow", "parameters", "event_id", "delivery", "connection_name",
                  "event_type", "status", "attempts", "error", "result", "created_at", "next_attempt_at",
                  "started_at", "finished_at"]


class SigningSecretRotateInputSerializer(serializers.Serializer):
    secret = serializers.CharField(required=False, allow_blank=False, max_length=512, trim_whitespace=False)
    previous_valid_until = serializers.DateTimeField(required=False)


class SigningSecretRotateOutputSerializer(serializers.Serializer):
    connection = serializers.CharField()
    previous_valid_until = serializers.DateTimeField(allow_null=True)
    secret = serializers.CharField(allow_null=True, help_text="the generated secret, shown once; null if you gave one")

"""Shapes of the connections API. Shape problems are 400; rule problems are the service's 422."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from integrations.models import Connection
from synthorg.public_url import webhook_url


class StrictCharField(serializers.CharField):
    """A string and nothing else: 5 or true is a shape error, not coerced into "5"/"True"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class MetadataField(serializers.DictField):
    """Free-form JSON (NUL, lone surrogates and deep nesting are refused for every body by
    `synthorg.parsers.JSONInputParser`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.JSONField(), **kwargs)


class RateLimitSerializer(serializers.Serializer):
    requests_per_minute = StrictIntegerField(required=False, help_text="0 = unlimited")
    burst = StrictIntegerField(required=False, help_text="extra requests allowed at once")
    max_concurrent = StrictIntegerField(required=False, help_text="0 = unlimited")


class HealthCheckInputSerializer(serializers.Serializer):
    enabled = StrictBooleanField(required=False)
    interval_seconds = StrictIntegerField(required=False, allow_null=True,
                                          help_text="null = integrations.health.check_interval_seconds")


class ConnectionCreateInputSerializer(serializers.Serializer):
    name = StrictCharField(trim_whitespace=False, max_length=1000)
    connection_type = StrictCharField(max_length=1000)
    credentials = serializers.DictField(child=serializers.JSONField(allow_null=True), required=False, default=dict,
                                        help_text="every auth field of the type, secret or not")
    rate_limit = RateLimitSerializer(required=False)
    health_check = HealthCheckInputSerializer(required=False)
    metadata = MetadataField(required=False, default=dict)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                           help_text="when the credential expires, if it does (alerts warn ahead)")


class ConnectionUpdateInputSerializer(serializers.Serializer):
    name = StrictCharField(required=False, trim_whitespace=False, max_length=1000,
                           help_text="cannot change; present only to be refused clearly")
    connection_type = StrictCharField(required=False, max_length=1000, help_text="cannot change")
    credentials = serializers.DictField(child=serializers.JSONField(allow_null=True), required=False,
                                        help_text="merged field by field; null removes a field")
    rate_limit = RateLimitSerializer(required=False)
    health_check = HealthCheckInputSerializer(required=False)
    metadata = MetadataField(required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="null: no known expiry")


class ConnectionListFilterSerializer(serializers.Serializer):
    connection_type = serializers.CharField(required=False, max_length=32)


class ConnectionDeleteQuerySerializer(serializers.Serializer):
    force = serializers.BooleanField(required=False, default=False,
                                     help_text="also remove dependants (MCP installations, provider configs)")


class RateLimitOutputSerializer(serializers.Serializer):
    requests_per_minute = serializers.IntegerField(source="rate_limit_rpm")
    burst = serializers.IntegerField(source="rate_limit_burst")
    max_concurrent = serializers.IntegerField(source="rate_limit_max_concurrent")


class HealthCheckOutputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(source="health_check_enabled")
    interval_seconds = serializers.IntegerField(source="health_check_interval_seconds", allow_null=True)


class HealthStateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(source="health_status", choices=Connection.HealthStatus.choices)
    checked_at = serializers.DateTimeField(source="health_checked_at", allow_null=True)
    consecutive_failures = serializers.IntegerField(source="health_consecutive_failures")
    last_error = serializers.CharField(source="health_last_error")
    latency_ms = serializers.IntegerField(source="health_latency_ms", allow_null=True)


class ConnectionOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    connection_type = serializers.CharField()
    config = serializers.DictField(child=serializers.JSONField(), help_text="non-secret fields")
    secret_fields = serializers.ListField(child=serializers.CharField(),
                                         help_text="names of the secret fields that are set (never values)")
    secret_backend = serializers.CharField()
    rate_limit = RateLimitOutputSerializer(source="*")
    health_check = HealthCheckOutputSerializer(source="*")
    health = HealthStateSerializer(source="*")
    metadata = serializers.DictField(child=serializers.JSONField())
    expires_at = serializers.DateTimeField(allow_null=True, help_text="when the credential expires, if known")
    webhook_url = serializers.SerializerMethodField(
        help_text="where senders post deliveries (event type `auto` takes the provider's own event name)")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_webhook_url(self, connection: Connection) -> str | None:
        return webhook_url(connection.name, self.context.get("request"))


class FieldDescriptionSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    required = serializers.BooleanField()
    secret = serializers.BooleanField()
    default = serializers.JSONField(allow_null=True)
    choices = serializers.ListField(child=serializers.CharField(), allow_null=True)
    help = serializers.CharField()


class ConnectionTypeOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    webhook_scheme = serializers.CharField(allow_null=True)
    fields = FieldDescriptionSerializer(many=True)
    # Changing one of these needs every secret of the connection again (409 secrets_required).
    destination_fields = serializers.ListField(child=serializers.CharField())


class SecretRevealOutputSerializer(serializers.Serializer):
    field = serializers.CharField()
    value = serializers.CharField()

"""Shapes of the health endpoints."""
from __future__ import annotations

from rest_framework import serializers

from integrations.models import Connection

STATUS_CHOICES = [c[0] for c in Connection.HealthStatus.choices]
# Plain strings in the output (documented values), so the schema has no competing enums named "status".
STATUS_HELP = "one of " + ", ".join(STATUS_CHOICES)


class HealthResultOutputSerializer(serializers.Serializer):
    status = serializers.CharField(help_text=f"what this check saw: {STATUS_HELP}")
    latency_ms = serializers.IntegerField(allow_null=True)
    checked_at = serializers.DateTimeField(allow_null=True)
    detail = serializers.CharField(help_text="a short sentence; never a secret")


class ConnectionHealthOutputSerializer(serializers.Serializer):
    connection = serializers.CharField()
    status = serializers.CharField(help_text=f"the smoothed status: {STATUS_HELP}")
    previous_status = serializers.CharField(help_text=STATUS_HELP)
    consecutive_failures = serializers.IntegerField()
    cached = serializers.BooleanField(help_text="true when a recent result was returned without probing")
    result = HealthResultOutputSerializer()


class ConnectionHealthQuerySerializer(serializers.Serializer):
    force = serializers.BooleanField(required=False, default=False,
                                     help_text="probe even when a recent result exists (staff only)")


class HealthListFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=STATUS_CHOICES, required=False, help_text="health status filter")


class ConnectionHealthStateOutputSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="health_status", help_text=f"the smoothed status: {STATUS_HELP}")
    checked_at = serializers.DateTimeField(source="health_checked_at", allow_null=True)
    consecutive_failures = serializers.IntegerField(source="health_consecutive_failures")
    last_error = serializers.CharField(source="health_last_error")
    latency_ms = serializers.IntegerField(source="health_latency_ms", allow_null=True)
    next_check_at = serializers.DateTimeField(source="health_next_check_at", allow_null=True)
    check_enabled = serializers.BooleanField(source="health_check_enabled")
    check_interval_seconds = serializers.IntegerField(source="health_check_interval_seconds", allow_null=True,
                                                      help_text="null = integrations.health.check_interval_seconds")

    class Meta:
        model = Connection
        fields = ["name", "connection_type", "status", "checked_at", "consecutive_failures", "last_error",
                  "latency_ms", "next_check_at", "check_enabled", "check_interval_seconds"]

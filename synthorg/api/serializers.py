from __future__ import annotations

from rest_framework import serializers

from synthorg.models import AuditEvent


class AuditEventOutputSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "action", "target_type", "target", "outcome",
                  "reason", "ip", "request_id", "details"]
        read_only_fields = fields


class AuditEventFilterSerializer(serializers.Serializer):
    action = serializers.CharField(required=False, max_length=64)
    target = serializers.CharField(required=False, max_length=255)
    target_type = serializers.CharField(required=False, max_length=64)
    actor = serializers.CharField(required=False, max_length=150)

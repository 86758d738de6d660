"""Input and output shapes of the catalog API (no secret value in any output)."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from catalog.models import Installation, VerifyJob


class CatalogSearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=200, trim_whitespace=True)


class CatalogOptionOutputSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="string, directory_list or file_path")
    required = serializers.BooleanField()
    description = serializers.CharField()
    pattern = serializers.CharField(allow_null=True)


class CatalogEntryOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    capabilities = serializers.ListField(child=serializers.CharField())
    transport = serializers.CharField()
    package = serializers.DictField(child=serializers.CharField())
    launch = serializers.DictField()
    connection = serializers.DictField(allow_null=True)
    env = serializers.DictField(child=serializers.CharField())
    args = serializers.ListField(child=serializers.CharField())
    options = serializers.DictField(child=CatalogOptionOutputSerializer())
    installed = serializers.BooleanField()


class InstallInputSerializer(serializers.Serializer):
    entry_id = serializers.CharField(max_length=64)
    connection_name = serializers.CharField(max_length=128, required=False, allow_null=True, allow_blank=True)
    options = serializers.DictField(required=False, child=serializers.JSONField(), allow_empty=True)


class InstallationOutputSerializer(serializers.ModelSerializer):
    connection_name = serializers.SerializerMethodField()

    class Meta:
        model = Installation
        fields = ["entry_id", "connection_name", "options", "installed_by", "installed_at", "updated_at"]

    def get_connection_name(self, obj: Installation) -> str | None:
        return obj.connection.name if obj.connection_id else None


class VerifyJobOutputSerializer(serializers.ModelSerializer):
    tools = serializers.ListField(child=serializers.DictField())
    # A plain string in the schema: a `status` enum here would collide with other apps' `status` enums.
    status = serializers.CharField(help_text="queued, running, succeeded or failed")

    class Meta:
        model = VerifyJob
        fields = ["id", "entry_id", "status", "tools", "error", "requested_by", "created_at", "started_at",
                  "finished_at"]


class McpServerOutputSerializer(serializers.Serializer):
    command = serializers.CharField(required=False)
    args = serializers.ListField(child=serializers.CharField(), required=False)
    env = serializers.DictField(child=serializers.CharField(), required=False)
    type = serializers.CharField(required=False)
    url = serializers.CharField(required=False)


class SkippedOutputSerializer(serializers.Serializer):
    entry_id = serializers.CharField()
    reason = serializers.CharField()


class McpConfigOutputSerializer(serializers.Serializer):
    mcpServers = serializers.DictField(child=McpServerOutputSerializer())
    clashes = serializers.ListField(child=serializers.CharField())
    skipped = SkippedOutputSerializer(many=True)


def entry_body(entry: Any, installed: set[str]) -> dict[str, Any]:
    return {**entry.describe(), "installed": entry.id in installed}

"""Shapes of the providers API. Shape problems are 400; rule problems are the service's 422."""
from __future__ import annotations

from rest_framework import serializers

from integrations.api.serializers import StrictBooleanField, StrictCharField
from providers.models import ProviderConfig

_DEPRECATED = "DEPRECATED embedded credential (stored encrypted, never returned): reference a connection instead"


class _EmbeddedInputFields(serializers.Serializer):
    api_key = StrictCharField(required=False, allow_null=True, trim_whitespace=False, max_length=100_000,
                              write_only=True, help_text=_DEPRECATED + "; null removes it")
    oauth_client_id = StrictCharField(required=False, allow_null=True, max_length=100_000, write_only=True,
                                      help_text=_DEPRECATED)
    oauth_client_secret = StrictCharField(required=False, allow_null=True, trim_whitespace=False,
                                          max_length=100_000, write_only=True, help_text=_DEPRECATED)
    oauth_token_url = StrictCharField(required=False, allow_null=True, max_length=100_000, write_only=True,
                                      help_text=_DEPRECATED)
    oauth_scopes = serializers.ListField(child=StrictCharField(max_length=1000), required=False, allow_null=True,
                                         max_length=100, write_only=True, help_text=_DEPRECATED)


class ProviderCreateInputSerializer(_EmbeddedInputFields):
    name = StrictCharField(trim_whitespace=False, max_length=1000)
    driver = StrictCharField(max_length=1000, help_text=f"one of {', '.join(ProviderConfig.Driver.values)}")
    base_url = StrictCharField(required=False, allow_blank=True, max_length=100_000, default="")
    model = StrictCharField(required=False, allow_blank=True, max_length=100_000, default="")
    connection_name = StrictCharField(required=False, allow_null=True, max_length=1000, default=None,
                                      help_text="connection whose credentials the provider uses at run time")


class ProviderUpdateInputSerializer(_EmbeddedInputFields):
    name = StrictCharField(required=False, trim_whitespace=False, max_length=1000,
                           help_text="cannot change; present only to be refused clearly")
    driver = StrictCharField(required=False, max_length=1000)
    base_url = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=100_000)
    model = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=100_000)
    connection_name = StrictCharField(required=False, allow_null=True, max_length=1000,
                                      help_text="null detaches the connection")


class ProviderListFilterSerializer(serializers.Serializer):
    driver = serializers.CharField(required=False, max_length=32)
    connection_name = serializers.CharField(required=False, max_length=128)


class ProviderOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    driver = serializers.ChoiceField(choices=ProviderConfig.Driver.choices)
    base_url = serializers.CharField()
    model = serializers.CharField()
    connection_name = serializers.SerializerMethodField()
    credentials_source = serializers.SerializerMethodField(
        help_text="where credentials would come from: connection, embedded (deprecated) or none")
    embedded_fields = serializers.ListField(
        child=serializers.CharField(), help_text="names of the deprecated embedded fields that are set (never values)")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_connection_name(self, provider: ProviderConfig) -> str | None:
        return provider.connection.name if provider.connection_id else None

    def get_credentials_source(self, provider: ProviderConfig) -> str:
        if provider.connection_id:
            return "connection"
        return "embedded" if provider.embedded_fields else "none"


class ProviderResolveCheckOutputSerializer(serializers.Serializer):
    resolvable = serializers.BooleanField()
    kind = serializers.ChoiceField(choices=["api_key", "bearer"], allow_null=True)
    source = serializers.CharField(allow_null=True, help_text="connection:<name> or embedded:api_key")
    deprecated = StrictBooleanField()
    code = serializers.CharField()
    detail = serializers.CharField()

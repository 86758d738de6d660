from __future__ import annotations

from rest_framework import serializers

from oauthflow.models import GrantType


class OAuthInitiateInputSerializer(serializers.Serializer):
    connection_name = serializers.CharField(max_length=128)
    grant_type = serializers.ChoiceField(choices=GrantType.choices, default=GrantType.AUTHORIZATION_CODE)
    scopes = serializers.ListField(child=serializers.CharField(max_length=200), max_length=50, required=False)


class OAuthCallbackQuerySerializer(serializers.Serializer):
    state = serializers.CharField(max_length=256, required=False, allow_blank=True, default="")
    code = serializers.CharField(max_length=4096, required=False, allow_blank=True, default="")
    error = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    error_description = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    error_uri = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    iss = serializers.CharField(max_length=1000, required=False)


class PendingDeviceFlowSerializer(serializers.Serializer):
    user_code = serializers.CharField()
    verification_uri = serializers.CharField()
    verification_uri_complete = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField()
    interval = serializers.IntegerField()
    polls = serializers.IntegerField()


class OAuthStatusOutputSerializer(serializers.Serializer):
    connection_name = serializers.CharField()
    connected = serializers.BooleanField()
    grant_type = serializers.CharField(allow_null=True)
    token_type = serializers.CharField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
    last_refreshed_at = serializers.DateTimeField(allow_null=True)
    status = serializers.ChoiceField(choices=["not_connected", "active", "refreshing",
                                              "reauthorization_required", "error"])
    refresh_token_held = serializers.BooleanField()
    failure_count = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)
    note = serializers.CharField(allow_blank=True)
    pending_device_flow = PendingDeviceFlowSerializer(required=False)


class OAuthInitiateOutputSerializer(serializers.Serializer):
    """One shape per grant: code flow (authorization_url, state), device flow (user_code ...),
    client credentials (status)."""

    grant_type = serializers.ChoiceField(choices=GrantType.choices)
    authorization_url = serializers.CharField(required=False)
    state = serializers.CharField(required=False)
    user_code = serializers.CharField(required=False)
    verification_uri = serializers.CharField(required=False)
    verification_uri_complete = serializers.CharField(required=False)
    expires_in = serializers.IntegerField(required=False)
    interval = serializers.IntegerField(required=False)
    status = OAuthStatusOutputSerializer(required=False)

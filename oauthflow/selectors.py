"""Reads: token status for the API, the admin and the oauth_app health check; due tokens."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from integrations.models import Connection
from oauthflow.models import OAuthDeviceFlow, OAuthToken
from synthorg.config import get_config


def token_get(connection: Connection) -> OAuthToken | None:
    return OAuthToken.objects.filter(connection=connection).first()


def tokens_due_for_refresh(*, now: datetime | None = None) -> QuerySet[OAuthToken]:
    """Tokens expiring within ``auto_refresh_threshold_seconds`` (or already expired), not in
    backoff, not held by a live lease and not waiting for the operator."""
    now = now or timezone.now()
    threshold = get_config().integrations.oauth.auto_refresh_threshold_seconds
    return (OAuthToken.objects.select_related("connection")
            .filter(expires_at__isnull=False, expires_at__lte=now + timedelta(seconds=threshold))
            .exclude(status=OAuthToken.Status.REAUTHORIZATION_REQUIRED)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .order_by("expires_at"))


def pending_device_flow(connection: Connection) -> OAuthDeviceFlow | None:
    return (OAuthDeviceFlow.objects.filter(connection=connection, status=OAuthDeviceFlow.Status.PENDING,
                                           expires_at__gt=timezone.now())
            .order_by("-created_at").first())


def oauth_status(connection: Connection) -> dict[str, Any]:
    """The status document of ``GET /api/v1/oauth/status/{name}``. Never holds a token value."""
    token = token_get(connection)
    now = timezone.now()
    status: dict[str, Any] = {
        "connection_name": connection.name, "connected": False, "grant_type": None, "token_type": None,
        "scopes": [], "expires_at": None, "last_refreshed_at": None, "status": "not_connected",
        "refresh_token_held": False, "failure_count": 0, "last_error": "", "note": "",
    }
    if token is not None:
        expired = token.expires_at is not None and token.expires_at <= now
        usable = token.status != OAuthToken.Status.REAUTHORIZATION_REQUIRED and (not expired or token.refreshable)
        status.update(
            connected=usable, grant_type=token.grant_type, token_type=token.token_type, scopes=token.scopes,
            expires_at=token.expires_at, last_refreshed_at=token.last_refreshed_at, status=token.status,
            refresh_token_held=token.has_refresh_token, failure_count=token.failure_count,
            last_error=token.last_error,
        )
        if token.status == OAuthToken.Status.REAUTHORIZATION_REQUIRED:
            status["note"] = "The operator must connect again (Connect in the admin, or initiate)."
        elif not token.refreshable and token.expires_at is not None:
            status["note"] = ("The provider gave no refresh token: this connection will need the operator again "
                              "when the token expires. Ask for offline access (e.g. the offline_access scope, "
                              "prompt=consent, or access_type=offline) to avoid that.")
    flow = pending_device_flow(connection)
    if flow is not None:
        status["pending_device_flow"] = {
            "user_code": flow.user_code, "verification_uri": flow.verification_uri,
            "verification_uri_complete": flow.verification_uri_complete or None,
            "expires_at": flow.expires_at, "interval": flow.interval_seconds, "polls": flow.polls,
        }
    return status


def device_flow_get(flow_id: int) -> OAuthDeviceFlow | None:
    return OAuthDeviceFlow.objects.filter(pk=flow_id).first()

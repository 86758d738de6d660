"""OAuth token states as the console shows them: a badge with a word, like health badges.

The stored status is the service's (active, refreshing, reauthorization_required, error); the
operator wants to know whether the connection works and whether they will be needed, so the
badge says connected, expiring, needs re-authorisation or not connected (issue 13 §6).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone
from django.utils.html import format_html

from oauthflow.dashboard import EXPIRING_SOON
from oauthflow.models import OAuthToken


@dataclass(frozen=True)
class Badge:
    css: str  # the class in synthorg/static/synthorg/console.css that colours it
    word: str


NOT_CONNECTED = Badge("not_connected", "not connected")
CONNECTED = Badge("connected", "connected")
EXPIRING = Badge("expiring", "expiring")
NEEDS_REAUTHORIZATION = Badge("needs_reauthorization", "needs re-authorisation")
REFRESH_ERROR = Badge("error", "refresh failing")


def oauth_badge(token: OAuthToken | None) -> Badge:
    if token is None:
        return NOT_CONNECTED
    if token.status == OAuthToken.Status.REAUTHORIZATION_REQUIRED:
        return NEEDS_REAUTHORIZATION
    if token.status == OAuthToken.Status.ERROR:
        return REFRESH_ERROR
    if token.expires_at is not None and not token.refreshable:
        # Nothing renews it: past expiry the operator must connect again; close to it, soon.
        now = timezone.now()
        if token.expires_at <= now:
            return NEEDS_REAUTHORIZATION
        if token.expires_at <= now + EXPIRING_SOON:
            return EXPIRING
    return CONNECTED


def oauth_badge_html(token: OAuthToken | None) -> str:
    badge = oauth_badge(token)
    return format_html('<span class="console-badge oauth-badge {}" data-status="{}">{}</span>',
                       badge.css, badge.css, badge.word)

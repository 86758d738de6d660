"""The admin index card for OAuth: tokens expiring soon, needing re-authorisation, or in error."""
from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from oauthflow.models import OAuthToken
from synthorg.dashboard import Card, Stat

# "Soon" for the operator: a token expiring within this window without a way to renew
# itself will need them; the card counts every token expiring in it.
EXPIRING_SOON = timedelta(hours=24)


def tokens_expiring_soon() -> int:
    now = timezone.now()
    return OAuthToken.objects.filter(expires_at__isnull=False, expires_at__lte=now + EXPIRING_SOON).count()


def oauth_card(request: HttpRequest) -> Card:
    tokens = reverse("admin:oauthflow_oauthtoken_changelist")
    total = OAuthToken.objects.count()
    reauth = OAuthToken.objects.filter(status=OAuthToken.Status.REAUTHORIZATION_REQUIRED).count()
    errors = OAuthToken.objects.filter(status=OAuthToken.Status.ERROR).count()
    soon = tokens_expiring_soon()
    stats = [
        Stat("tokens", total, tokens),
        Stat("expiring within 24 h", soon, f"{tokens}?expiry=soon", "warn" if soon else ""),
        Stat("need re-authorisation", reauth, f"{tokens}?status__exact={OAuthToken.Status.REAUTHORIZATION_REQUIRED}",
             "bad" if reauth else ""),
        Stat("refresh errors", errors, f"{tokens}?status__exact={OAuthToken.Status.ERROR}", "bad" if errors else ""),
    ]
    return Card(title="OAuth tokens", stats=stats, note="Token values are never shown.", order=20)

"""The externally reachable base URL of this service (webhook URLs, the OAuth redirect URI).

Order: a running tunnel's public URL (registered by the tunnel code through
`register_provider`), then `SYNTHORG_PUBLIC_URL`, then the request's own host.
"""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest

_providers: list[Callable[[], str | None]] = []


def register_provider(provider: Callable[[], str | None]) -> None:
    """A source that may know a better public URL (the tunnel), asked before the settings."""
    if provider not in _providers:
        _providers.append(provider)


def public_base_url(request: HttpRequest | None = None) -> str | None:
    for provider in _providers:
        url = provider()
        if url:
            return url.rstrip("/")
    if settings.SYNTHORG_PUBLIC_URL:
        return settings.SYNTHORG_PUBLIC_URL
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return None


def webhook_url(connection_name: str, request: HttpRequest | None = None, event_type: str = "auto") -> str | None:
    base = public_base_url(request)
    return f"{base}/api/v1/webhooks/{connection_name}/{event_type}" if base else None

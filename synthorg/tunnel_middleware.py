"""Requests arriving through the tunnel's public host may reach only the webhook receiver and the
OAuth callback; everything else (admin, API, docs) answers 404 there, so the console never
becomes public by accident.

A request counts as "through the tunnel" when its Host is the running tunnel's public host
or any ngrok domain (a safety net that holds even while the recorded URL is stale).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse, JsonResponse

TUNNEL_ALLOWED_PATHS = re.compile(r"^/api/v1/(webhooks/[^/]+/[^/]+|oauth/callback)/?$")
NGROK_DOMAINS = (".ngrok-free.app", ".ngrok-free.dev", ".ngrok.app", ".ngrok.dev", ".ngrok.io", ".ngrok.pizza")


def _host(request: HttpRequest) -> str:
    # The raw header: get_host() would validate against ALLOWED_HOSTS first.
    raw = request.META.get("HTTP_X_FORWARDED_HOST") or request.META.get("HTTP_HOST") or ""
    return raw.split(",")[0].strip().lower().rsplit(":", 1)[0] if raw else ""


def is_tunnel_host(host: str) -> bool:
    from integrations.tunnel import tunnel_public_url

    if not host:
        return False
    if host.endswith(NGROK_DOMAINS):
        return True
    public = tunnel_public_url()
    return bool(public) and (urlsplit(public).hostname or "").lower() == host


class TunnelHostMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not TUNNEL_ALLOWED_PATHS.match(request.path) and is_tunnel_host(_host(request)):
            return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
        return self.get_response(request)

"""Requests arriving through the tunnel's public host may reach only the webhook receiver and the
OAuth callback; everything else (admin, API, docs) answers 404 there, so the console never
becomes public by accident.

A request counts as public (issue 12 §4) when the host it was addressed to is
* any ngrok domain, or the running tunnel's recorded public host (a safety net that holds even
  while the recorded URL is stale), or
* in development mode (``ALLOWED_HOSTS`` holds ``*``), any name that is not a local one:
  ``localhost``, a loopback address, or a name listed in ``ALLOWED_HOSTS`` besides ``*``.

The host is the ``Host`` header, normalised (case, port, trailing dot, IPv6 brackets). A
client-sent ``X-Forwarded-Host`` is ignored: ngrok passes it through, so believing it let
``X-Forwarded-Host: 127.0.0.1`` reach the admin. It is considered only when the request comes
from a proxy listed in ``integrations.trusted_proxies``, and then only to make a request *more*
public, never less. A malformed host counts as unknown.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import validate_host

from synthorg.client_address import normalise_host, request_hosts

TUNNEL_ALLOWED_PATHS = re.compile(r"^/api/v1/(webhooks/[^/]+/[^/]+|oauth/callback)/?$")
NGROK_DOMAINS = (".ngrok-free.app", ".ngrok-free.dev", ".ngrok.app", ".ngrok.dev", ".ngrok.io", ".ngrok.pizza")


def is_tunnel_host(host: str) -> bool:
    """An ngrok name, or the host of the running tunnel's public URL (``host`` normalised)."""
    from integrations.tunnel import tunnel_public_url

    if not host:
        return False
    if host.endswith(NGROK_DOMAINS):
        return True
    public = tunnel_public_url()
    return bool(public) and normalise_host(urlsplit(public).netloc) == host


def is_local_name(host: str) -> bool:
    """``localhost`` (and ``*.localhost``), a loopback address, or a name ``ALLOWED_HOSTS`` lists
    explicitly (``*`` does not count)."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    return validate_host(host, [name for name in settings.ALLOWED_HOSTS if name != "*"])


def is_public_host(host: str) -> bool:
    if is_tunnel_host(host):
        return True
    # Development mode accepts any Host: whatever is not known to be local may be the tunnel
    # (a custom ngrok domain, a stale URL), so it gets the public restriction.
    return "*" in settings.ALLOWED_HOSTS and not is_local_name(host)


def is_public_request(meta: Mapping[str, Any]) -> bool:
    return any(is_public_host(host) for host in request_hosts(meta))


class TunnelHostMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not TUNNEL_ALLOWED_PATHS.match(request.path) and is_public_request(request.META):
            return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
        return self.get_response(request)

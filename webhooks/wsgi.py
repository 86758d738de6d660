"""The webhook receiver's own WSGI handler: the same Django and view, fewer middleware.

Senders post at their own rate and time out quickly (Slack after 3 s), so the receiver is the
one endpoint whose per-request overhead matters. It uses no session, user, CSRF token (it is
exempt), message or static file, so `receiver_fast_path` sends a request that the project's
URLconf routes to `webhooks.views.webhook_receive` (decided by the same resolver, so routing
never differs) to a second handler built without those middleware (``RECEIVER_SKIPPED``).
Everything else goes to the full handler.

The receiver keeps every protection that applies to it: request ids, the Content-Security-Policy
header and the NUL refusal (the three in one layer, `webhooks.receiver_guard`), the security
headers and HTTPS redirect, host validation (``CommonMiddleware`` calls ``get_host()``),
``X-Frame-Options`` and the ``integrations.enabled`` switch. The tunnel middleware is skipped
because it lets receiver paths through by design, Axes because it acts on logins only. A
middleware added to settings later is included unless it is added to ``RECEIVER_SKIPPED`` too.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler, get_path_info
from django.http import HttpRequest
from django.urls import Resolver404, ResolverMatch, get_resolver

RECEIVER_SKIPPED = frozenset({
    "synthorg.tunnel_middleware.TunnelHostMiddleware",  # receiver paths always pass it
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",  # acts on login attempts only
})
# Replaced, in their place, by one layer doing the same for the receiver (`webhooks.receiver_guard`).
RECEIVER_GUARD = "webhooks.receiver_guard.ReceiverGuardMiddleware"
RECEIVER_REPLACED = frozenset({
    "synthorg.middleware.RequestIdMiddleware",
    "synthorg.csp.ContentSecurityPolicyMiddleware",
    "synthorg.middleware.NulCharacterMiddleware",
})
RECEIVER_URLCONF = "webhooks.receiver_urls"


def receiver_middleware(full: list[str]) -> list[str]:
    """The receiver's chain: ``full`` minus ``RECEIVER_SKIPPED``, with ``RECEIVER_REPLACED``
    replaced by ``RECEIVER_GUARD`` where the first of them stood."""
    chain: list[str] = []
    for name in full:
        if name in RECEIVER_SKIPPED:
            continue
        if name in RECEIVER_REPLACED:
            if RECEIVER_GUARD not in chain:
                chain.append(RECEIVER_GUARD)
            continue
        chain.append(name)
    return chain


class ReceiverHandler(WSGIHandler):
    """A WSGIHandler whose middleware chain is `receiver_middleware` of ``settings.MIDDLEWARE``
    and whose URLconf holds the receiver's route only."""

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler reads settings.MIDDLEWARE; give it the receiver's list while it builds
        # the chain (once, at startup, before any request).
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = receiver_middleware(list(full))
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        # `receiver_fast_path` sent this request here because the project's URLconf routes it
        # to the receiver; the same route, alone, resolves it again without the URLconf's walk.
        match = get_resolver(RECEIVER_URLCONF).resolve(request.path_info)
        request.resolver_match = match
        return match


# Receiver paths are short (a connection name and an event type); longer ones are resolved
# without being remembered, so the cache stays small whatever paths requests make up.
_CACHED_PATH_LENGTH = 300


def is_receiver_path(path_info: str) -> bool:
    """Whether the project's URLconf routes this path to the receiver."""
    if not path_info.startswith("/api/v1/webhooks/"):
        return False
    if len(path_info) > _CACHED_PATH_LENGTH:
        return _routes_to_receiver.__wrapped__(path_info)
    return _routes_to_receiver(path_info)


@lru_cache(maxsize=1024)
def _routes_to_receiver(path_info: str) -> bool:
    # Cached per path: the routes are fixed at startup; made-up paths only evict entries.
    from webhooks.views import webhook_receive

    try:
        match = get_resolver().resolve(path_info)
    except Resolver404:
        return False
    return match.func is webhook_receive


def receiver_fast_path(application: WSGIHandler) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """Wrap the project's WSGI application: receiver POSTs go to a `ReceiverHandler`."""
    receiver = ReceiverHandler()

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST" and is_receiver_path(get_path_info(environ)):
            return receiver(environ, start_response)
        return application(environ, start_response)

    return dispatch

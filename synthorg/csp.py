"""Content-Security-Policy on every response the service renders (issue 12 §6).

One strict policy: scripts, styles, images, fonts and fetches only from this origin (the
console's assets and Swagger UI are served from the packages, never a CDN), no plugins, no
framing, forms post only here. The pages keep no inline script; the few inline `<style>`
blocks a page cannot move to a static file (the OAuth pages, reachable through the tunnel
where /static/ is not) carry the request's nonce (`{{ request.csp_nonce }}`).

A view may widen one directive for its own response with `csp_allow(response, directive,
source)`: the OAuth Connect form posts here and is redirected to the provider, and browsers
apply `form-action` to that redirect too.

Django 6.0 has this built in (`django.middleware.csp`); on 5.2 this small middleware does it.
The webhook receiver's lean WSGI handler answers JSON only and skips it.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

HEADER = "Content-Security-Policy"

POLICY: dict[str, tuple[str, ...]] = {
    "default-src": ("'self'",),
    "script-src": ("'self'",),
    "style-src": ("'self'",),
    "img-src": ("'self'", "data:"),
    "font-src": ("'self'",),
    "connect-src": ("'self'",),
    "object-src": ("'none'",),
    "base-uri": ("'self'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}
# Directives that accept the per-request nonce.
NONCE_DIRECTIVES = ("script-src", "style-src")


def csp_allow(response: HttpResponse, directive: str, source: str) -> None:
    """Widen `directive` for this response only, by one origin taken from `source` (a URL)."""
    parts = urlsplit(source)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return
    extra: dict[str, list[str]] = getattr(response, "csp_extra", {})
    extra.setdefault(directive, []).append(f"{parts.scheme}://{parts.netloc}")
    response.csp_extra = extra  # type: ignore[attr-defined]


def policy_header(nonce: str | None = None, extra: dict[str, list[str]] | None = None) -> str:
    directives = []
    for name, sources in POLICY.items():
        values = list(sources) + list((extra or {}).get(name, ()))
        if nonce and name in NONCE_DIRECTIVES:
            values.append(f"'nonce-{nonce}'")
        directives.append(f"{name} {' '.join(values)}")
    return "; ".join(directives)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        used: list[str] = []

        def make_nonce() -> str:
            used.append(secrets.token_urlsafe(18))
            return used[0]

        # Lazy: the nonce enters the policy only on pages that used it.
        request.csp_nonce = SimpleLazyObject(make_nonce)  # type: ignore[attr-defined]
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = policy_header(used[0] if used else None, getattr(response, "csp_extra", None))
        return response

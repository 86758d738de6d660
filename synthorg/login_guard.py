"""Brute-force protection for the two logins (the admin's and POST /api/v1/auth/token).

django-axes counts the failures and refuses a locked-out username + address (settings:
``AXES_*``). This module adds what the service needs around it:

* `login_failed_audit`: every failed login writes an audit event (never the password);
* `lockout_response`: the answer to a locked-out attempt: the API's ``{"detail", "code"}``
  JSON with ``Retry-After`` under /api/, a short page elsewhere; 429 either way.
"""
from __future__ import annotations

import math
from typing import Any

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse

from synthorg.audit import audit_record

LOCKED_OUT_CODE = "login_locked_out"


def _request(request: Any) -> HttpRequest | None:
    # DRF's Request wraps the HttpRequest; axes flags and the audit read the HttpRequest.
    return getattr(request, "_request", request)


def _where(request: HttpRequest | None) -> str:
    path = getattr(request, "path", "") or ""
    return "api" if path.startswith("/api/") else "admin"


def _cool_off_seconds(request: HttpRequest | None) -> int:
    cool_off = get_cool_off(request)
    return max(1, math.ceil(cool_off.total_seconds())) if cool_off else 0


def login_failed_audit(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    """Receiver of Django's ``user_login_failed``: one audit event per failure.

    Django has already replaced the password in `credentials` with asterisks; only the
    username is kept (as the target), cut to the length of a username.
    """
    http_request = _request(request)
    username = str(credentials.get("username") or "")[:150]
    locked = bool(getattr(http_request, "axes_locked_out", False))
    audit_record(action="auth.login_failed", target=username, target_type="user",
                 outcome="denied" if locked else "failure", reason="locked_out" if locked else "bad_credentials",
                 request=http_request,
                 details={"via": _where(http_request)})


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict[str, Any] | None = None) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: what a locked-out login attempt gets back."""
    seconds = _cool_off_seconds(request)
    minutes = max(1, math.ceil(seconds / 60)) if seconds else 0
    wait = f"try again in {minutes} minute{'s' if minutes != 1 else ''}" if minutes else "ask an administrator"
    detail = f"Too many failed logins for this username from this address; {wait}."
    if _where(request) == "api":
        response: HttpResponse = JsonResponse({"detail": detail, "code": LOCKED_OUT_CODE}, status=429)
    else:
        response = HttpResponse(detail, status=429, content_type="text/plain; charset=utf-8")
    if seconds:
        response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response

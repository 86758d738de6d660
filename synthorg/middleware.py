"""Request ids for every request, and the `integrations.enabled` switch."""
from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

REQUEST_ID_HEADER = "X-Request-ID"
# A caller-supplied id is kept only when it is short and harmless in a log line.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return respond_with_request_id(request, self.get_response)


def respond_with_request_id(request: HttpRequest,
                            get_response: Callable[[HttpRequest], HttpResponse]) -> HttpResponse:
    """``get_response(request)`` under the request's id: the caller's ``X-Request-ID`` when it is
    valid, else a new one; set for the logs (`request_id_var`) and echoed on the response. Also
    the first step of the webhook receiver's guard (`webhooks.receiver_guard`)."""
    incoming = request.META.get("HTTP_X_REQUEST_ID", "")
    request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request.request_id = request_id  # type: ignore[attr-defined]
    token = request_id_var.set(request_id)
    try:
        response = get_response(request)
    finally:
        request_id_var.reset(token)
    response[REQUEST_ID_HEADER] = request_id
    return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


# Paths that belong to the integrations layer; the audit log and the probes stay up.
_INTEGRATION_PATHS = re.compile(
    r"^/api/v1/(connections|oauth|webhooks|integrations|providers)(/|$)"
)


class IntegrationsEnabledMiddleware:
    """`integrations.enabled: false` → 503 `integrations_disabled` (senders retry later)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _INTEGRATION_PATHS.match(request.path):
            from synthorg.config import get_config

            if not get_config().integrations.enabled:
                response = JsonResponse(
                    {"detail": "The integrations layer is disabled by configuration "
                               "(integrations.enabled: false).",
                     "code": "integrations_disabled"},
                    status=503,
                )
                response["Retry-After"] = "300"
                return response
        return self.get_response(request)


class NulCharacterMiddleware:
    """Refuse NUL characters in the path, the query string and cookies before anything uses them.

    PostgreSQL text cannot hold NUL, so a NUL that reaches a query is a 500; one check here
    covers every path parameter and filter of every app, and the session cookie (Django's
    database session store looks it up as is). A path with NUL names nothing (404); a query
    string with one is malformed (400); a cookie with one is dropped, as if never sent.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for name in [n for n, value in request.COOKIES.items() if "\x00" in n or "\x00" in value]:
            del request.COOKIES[name]
        if "\x00" in request.path:
            return nul_in_path_response()
        if query_has_nul(request) and not _validates_own_query(request):
            return nul_in_query_response()
        return self.get_response(request)


def nul_in_path_response() -> HttpResponse:
    """A path with a NUL names nothing."""
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def nul_in_query_response() -> HttpResponse:
    return JsonResponse({"detail": "The query string contains a NUL character.", "code": "invalid"}, status=400)


def query_has_nul(request: HttpRequest) -> bool:
    """Whether the query string holds a NUL, raw or percent-encoded (then in a decoded key or value)."""
    return "\x00" in request.META.get("QUERY_STRING", "") or any(
        "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists())


def _validates_own_query(request: HttpRequest) -> bool:
    """Whether the view refuses NUL in its query itself, in its own format (`validates_own_query`).

    The OAuth callback is a browser page: its query serializer's CharFields refuse NUL and it
    answers 400 as the HTML page its schema promises, where a JSON refusal here would not.
    """
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    view_class = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
    return bool(getattr(view_class, "validates_own_query", False))

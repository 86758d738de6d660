"""webhooks.wsgi: receiver POSTs are served by a handler without the session, auth, CSRF,
message, static-file and tunnel middleware; every other request by the full handler.

Driven through the WSGI interface itself (hand-built environs), as gunicorn calls it. The
handlers run in this process on the test's database connection; like Django's test client,
`call` keeps the request signals from closing that connection (and the test's transaction).
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from synthorg.csp import policy_header
from tests.webhooks.receiving import github_body, github_headers, make_github
from webhooks import wsgi as wsgi_module
from webhooks.models import Delivery
from webhooks.wsgi import (
    RECEIVER_GUARD,
    RECEIVER_REPLACED,
    RECEIVER_SKIPPED,
    ReceiverHandler,
    is_receiver_path,
    receiver_fast_path,
)

Response = tuple[int, dict[str, str], bytes]


def environ(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
            host: str = "testserver", content_type: str = "application/json") -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": host,
        "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(), "wsgi.multithread": True,
        "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = content_type
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(app: Callable[..., Any], env: dict[str, Any]) -> Response:
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started["status"], started["headers"] = status, headers

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = app(env, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()  # as a server does: fires request_finished
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return int(started["status"].split()[0]), {k.lower(): v for k, v in started["headers"]}, body


class Counting:
    """Which handler served a request: the fast path's or the full one."""

    def __init__(self) -> None:
        self.receiver = 0
        self.full = 0


@pytest.fixture
def served() -> Iterator[tuple[Callable[..., Any], Counting]]:
    counts = Counting()

    class CountingReceiver(ReceiverHandler):
        def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            counts.receiver += 1
            return super().__call__(environ, start_response)

    class CountingFull(WSGIHandler):
        def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            counts.full += 1
            return super().__call__(environ, start_response)

    with mock.patch.object(wsgi_module, "ReceiverHandler", CountingReceiver):
        app = receiver_fast_path(CountingFull())
    yield app, counts


def signed(n: int = 0, **headers: str) -> tuple[bytes, dict[str, str]]:
    body = github_body(n)
    return body, {**github_headers(body, delivery=f"d-{n}"), **headers}


# --- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), [
    ("/api/v1/webhooks/gh/push", True),
    ("/api/v1/webhooks/gh/auto", True),
    ("/api/v1/webhooks/My.Conn-1/issue_comment", True),
    ("/api/v1/webhooks/gh/activity", False),
    ("/api/v1/webhooks/triggers/5", False),
    ("/api/v1/webhooks/runs/3", False),
    ("/api/v1/webhooks/triggers", False),
    ("/api/v1/webhooks/runs", False),
    ("/api/v1/webhooks/gh/push/", False),
    ("/api/v1/webhooks/gh", False),
    ("/api/v1/connections", False),
    ("/api/v1/connections/gh/signing-secret/rotate", False),
    ("/admin/", False),
])
def test_is_receiver_path(path: str, expected: bool) -> None:
    assert is_receiver_path(path) is expected


@pytest.mark.django_db
def test_signed_delivery_through_the_fast_path_is_accepted_and_stored(
        served: tuple[Callable[..., Any], Counting]) -> None:
    app, counts = served
    make_github()
    body, headers = signed(1)
    status, response_headers, content = call(app, environ("POST", "/api/v1/webhooks/gh/push", body, headers))
    assert status == 202, content
    assert (counts.receiver, counts.full) == (1, 0)
    delivery = Delivery.objects.get()
    assert f'"delivery_id": {delivery.pk}'.encode() in content
    assert delivery.event_type == "push" and bytes(delivery.body) == body
    # The middleware the receiver keeps still answer for it.
    assert len(response_headers["x-request-id"]) == 32
    assert response_headers["x-content-type-options"] == "nosniff"
    assert response_headers["x-frame-options"] == "DENY"
    assert response_headers["content-type"] == "application/json"
    # Nothing of the skipped middleware: no session, no CSRF cookie.
    assert "set-cookie" not in response_headers


@pytest.mark.django_db
def test_a_valid_request_id_is_echoed_and_an_invalid_one_replaced(served: tuple[Callable[..., Any], Counting]) -> None:
    app, _counts = served
    make_github()
    body, headers = signed(2, **{"X-Request-ID": "sender-id.42"})
    _status, response_headers, _content = call(app, environ("POST", "/api/v1/webhooks/gh/push", body, headers))
    assert response_headers["x-request-id"] == "sender-id.42"
    body, headers = signed(3, **{"X-Request-ID": "not valid!"})
    _status, response_headers, _content = call(app, environ("POST", "/api/v1/webhooks/gh/push", body, headers))
    assert response_headers["x-request-id"] != "not valid!" and len(response_headers["x-request-id"]) == 32


@pytest.mark.django_db
def test_bad_signature_on_the_fast_path_is_the_uniform_401(served: tuple[Callable[..., Any], Counting]) -> None:
    app, counts = served
    make_github()
    body = github_body(4)
    status, _headers, content = call(app, environ("POST", "/api/v1/webhooks/gh/push", body,
                                                  github_headers(body, secret="wrong")))
    assert status == 401 and b"webhook_unauthorized" in content
    assert counts.receiver == 1 and not Delivery.objects.exists()


@pytest.mark.django_db
def test_other_webhook_paths_and_methods_go_to_the_full_handler(
        served: tuple[Callable[..., Any], Counting], operator_user: Any) -> None:
    from rest_framework.authtoken.models import Token

    app, counts = served
    make_github()
    token = Token.objects.create(user=operator_user)
    auth = {"Authorization": f"Token {token.key}"}
    # The activity API shares the receiver's path shape; it has no POST.
    status, _headers, _content = call(app, environ("POST", "/api/v1/webhooks/gh/activity", b"{}", auth))
    assert status == 405
    assert (counts.receiver, counts.full) == (0, 1)
    status, _headers, _content = call(app, environ("GET", "/api/v1/webhooks/gh/activity", headers=auth))
    assert status == 200
    # A GET to a receiver path: the full handler, where require_POST answers 405.
    status, _headers, _content = call(app, environ("GET", "/api/v1/webhooks/gh/push"))
    assert status == 405
    status, _headers, _content = call(app, environ("POST", "/api/v1/webhooks/triggers/5", b"{}", auth))
    assert status == 405
    assert (counts.receiver, counts.full) == (0, 4)


@pytest.mark.django_db
def test_disallowed_host_is_400_on_the_fast_path_too(served: tuple[Callable[..., Any], Counting],
                                                      settings: Any) -> None:
    app, counts = served
    settings.ALLOWED_HOSTS = ["testserver"]
    make_github()
    body, headers = signed(5)
    status, _headers, _content = call(app, environ("POST", "/api/v1/webhooks/gh/push", body, headers,
                                                   host="evil.example"))
    assert status == 400
    assert counts.receiver == 1 and not Delivery.objects.exists()
    status, _headers, _content = call(app, environ("POST", "/api/v1/webhooks/gh/push", body, headers))
    assert status == 202


@pytest.mark.django_db
def test_integrations_disabled_is_503_on_the_fast_path(served: tuple[Callable[..., Any], Counting],
                                                       settings: Any) -> None:
    app, counts = served
    settings.SYNTHORG_CONFIG_OVERRIDES = {"enabled": False}
    make_github()
    body, headers = signed(6)
    status, response_headers, content = call(app, environ("POST", "/api/v1/webhooks/gh/push", body, headers))
    assert status == 503 and b"integrations_disabled" in content
    assert response_headers["retry-after"]
    assert counts.receiver == 1 and not Delivery.objects.exists()


@pytest.mark.django_db
def test_a_nul_in_the_path_is_still_refused_on_the_fast_path(served: tuple[Callable[..., Any], Counting]) -> None:
    app, _counts = served
    body, headers = signed(7)
    status, _headers, _content = call(app, environ("POST", "/api/v1/webhooks/g\x00h/push", body, headers))
    assert status == 404


def test_receiver_middleware_is_the_full_list_minus_the_skipped_with_the_guard_in_place() -> None:
    full = list(django_settings.MIDDLEWARE)
    # Every skipped or replaced name is one the project really uses (a typo would skip nothing).
    assert RECEIVER_SKIPPED <= set(full)
    assert RECEIVER_REPLACED <= set(full)
    seen: list[list[str]] = []
    original = BaseHandler.load_middleware

    def recording(self: BaseHandler, is_async: bool = False) -> None:
        seen.append(list(django_settings.MIDDLEWARE))
        original(self, is_async)

    with mock.patch.object(BaseHandler, "load_middleware", recording):
        ReceiverHandler()
    first_replaced = min(full.index(name) for name in RECEIVER_REPLACED)
    expected = [name for name in full[:first_replaced] if name not in RECEIVER_SKIPPED] + [RECEIVER_GUARD] + [
        name for name in full[first_replaced:] if name not in RECEIVER_SKIPPED | RECEIVER_REPLACED]
    assert seen == [expected]
    assert list(django_settings.MIDDLEWARE) == full  # put back after the chain was built
    # The guard stands where the request id middleware stood: first, so every answer carries the id.
    assert seen[0][0] == RECEIVER_GUARD
    for required in ("django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware",
                     "django.middleware.clickjacking.XFrameOptionsMiddleware",
                     "synthorg.middleware.IntegrationsEnabledMiddleware"):
        assert required in seen[0]


@pytest.mark.django_db
def test_the_guard_sends_the_policy_without_a_nonce(served: tuple[Callable[..., Any], Counting]) -> None:
    app, counts = served
    make_github()
    body, headers = signed(8)
    status, response_headers, _content = call(app, environ("POST", "/api/v1/webhooks/gh/push", body, headers))
    assert status == 202 and counts.receiver == 1
    assert response_headers["content-security-policy"] == policy_header()
    assert "nonce-" not in response_headers["content-security-policy"]
    # The same policy the full handler sends on a page that uses no nonce.
    assert "frame-ancestors 'none'" in response_headers["content-security-policy"]


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["a=%00", "a\x00=1", "%00=1"])
def test_a_nul_in_the_query_is_refused_on_the_fast_path(served: tuple[Callable[..., Any], Counting],
                                                        query: str) -> None:
    app, counts = served
    make_github()
    body, headers = signed(9)
    env = environ("POST", "/api/v1/webhooks/gh/push", body, headers)
    env["QUERY_STRING"] = query
    status, response_headers, content = call(app, env)
    assert status == 400 and b"NUL" in content and counts.receiver == 1
    assert len(response_headers["x-request-id"]) == 32 and "content-security-policy" in response_headers
    assert not Delivery.objects.exists()


@pytest.mark.django_db
def test_a_harmless_query_is_ignored_on_the_fast_path(served: tuple[Callable[..., Any], Counting]) -> None:
    app, _counts = served
    make_github()
    body, headers = signed(10)
    env = environ("POST", "/api/v1/webhooks/gh/push", body, headers)
    env["QUERY_STRING"] = "source=github&x=1"
    status, _headers, content = call(app, env)
    assert status == 202, content


def test_the_guard_keeps_the_request_id_for_the_logs_and_resets_it() -> None:
    from synthorg.middleware import current_request_id
    from webhooks.receiver_guard import ReceiverGuardMiddleware

    seen: list[str | None] = []

    def view(request: Any) -> Any:
        from django.http import HttpResponse

        seen.append(current_request_id())
        return HttpResponse("{}", content_type="application/json")

    request = mock.Mock(path="/api/v1/webhooks/gh/push", META={"HTTP_X_REQUEST_ID": "abc-1"})
    response = ReceiverGuardMiddleware(view)(request)
    assert seen == ["abc-1"] and response["X-Request-ID"] == "abc-1"
    assert current_request_id() is None


def test_receiver_handler_resolves_with_its_own_urlconf() -> None:
    handler = ReceiverHandler()
    request = mock.Mock(path_info="/api/v1/webhooks/gh/push")
    match = handler.resolve_request(request)
    assert match.url_name == "webhook-receive"
    assert match.kwargs == {"connection_name": "gh", "event_type": "push"}
    assert request.resolver_match is match


@pytest.mark.django_db
def test_the_project_wsgi_application_uses_the_fast_path() -> None:
    from synthorg.wsgi import application

    make_github()
    body, headers = signed(8)
    with mock.patch.object(ReceiverHandler, "resolve_request", autospec=True,
                           side_effect=ReceiverHandler.resolve_request) as resolve:
        status, _headers, content = call(application, environ("POST", "/api/v1/webhooks/gh/push", body, headers))
    assert status == 202, content
    assert resolve.call_count == 1
    assert Delivery.objects.count() == 1


def test_made_up_long_paths_are_resolved_but_never_cached() -> None:
    from webhooks.wsgi import _routes_to_receiver

    _routes_to_receiver.cache_clear()
    long_name = "/api/v1/webhooks/" + "x" * 400 + "/push"  # longer than any connection name allows
    assert is_receiver_path(long_name) is False
    assert is_receiver_path("/api/v1/webhooks/gh/push") is True
    assert _routes_to_receiver.cache_info().currsize == 1  # only the short, real-looking path

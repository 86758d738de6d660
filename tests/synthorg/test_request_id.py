from __future__ import annotations

import logging
from typing import Any

import pytest

from synthorg.middleware import RequestIdLogFilter


@pytest.mark.django_db
def test_request_without_id_gets_a_generated_one(client: Any) -> None:
    response = client.get("/healthz")
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_valid_incoming_id_is_echoed(client: Any) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID="trace-abc.123")
    assert response["X-Request-ID"] == "trace-abc.123"


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["has space", "x" * 129, "new\nline", "<script>"])
def test_unsafe_incoming_id_is_replaced(client: Any, bad: str) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID=bad)
    assert response["X-Request-ID"] != bad
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_error_responses_carry_the_id_too(client: Any) -> None:
    response = client.get("/api/v1/audit-events", HTTP_X_REQUEST_ID="req-401")
    assert response.status_code == 401
    assert response["X-Request-ID"] == "req-401"


def test_log_records_outside_a_request_get_a_dash() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    RequestIdLogFilter().filter(record)
    assert record.request_id == "-"


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    "/api/v1/integrations/mcp/catalog/install/bad%00id", "/api/v1/providers/x%00y", "/api/v1/connections/a%00",
])
def test_nul_in_path_is_404_for_every_app(operator_client: Any, path: str) -> None:
    for method in ("get", "delete", "patch"):
        response = getattr(operator_client, method)(path)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_nul_in_query_string_is_400(operator_client: Any) -> None:
    response = operator_client.get("/api/v1/audit-events?target=a%00b")
    assert response.status_code == 400
    assert response["X-Request-ID"]


@pytest.mark.django_db
def test_session_cookie_with_nul_is_ignored_not_a_500(client: Any) -> None:
    # Long enough to pass Django's session-key shape check, so the store would query it.
    cookie = "sessionid=abcdefgh\x00ijklmnopqrstuvwxyz0123"
    assert client.get("/api/v1/oauth/callback", {"state": "x", "code": "y"}, HTTP_COOKIE=cookie).status_code == 400
    assert client.get("/admin/login/", HTTP_COOKIE=cookie).status_code == 200

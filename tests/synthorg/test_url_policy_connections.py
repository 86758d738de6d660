"""Issue 12, "one URL parser decides where a request goes", end to end: the API refuses the URL
(422), and a URL forced into the database (stored before the rule) never reaches a listener."""
from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
from rest_framework.test import APIClient

from integrations import services
from integrations.health import connection_health_check
from integrations.models import Connection
from integrations.types import github
from tests.peers.bait_listener import BaitListener

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections"
TOKEN = "ghp_urlPolicyCanary0123456789"
REPRODUCTION = "https://localhost\\.github.com"


@pytest.fixture
def root_api(superuser: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(superuser)
    return client


def _force_config(connection: Connection, **config: Any) -> None:
    """What a row written before the rule looks like: no validator ever saw it."""
    Connection.objects.filter(pk=connection.pk).update(config={**connection.config, **config})


def test_backslash_api_url_is_422_on_create_and_patch(root_api: APIClient) -> None:
    response = root_api.post(URL, {"name": "gh", "connection_type": "github",
                                   "credentials": {"token": TOKEN, "api_url": REPRODUCTION}}, format="json")
    assert response.status_code == 422, response.content
    assert "backslash" in response.json()["errors"]["credentials.api_url"][0]
    assert not Connection.objects.filter(name="gh").exists()

    services.connection_create(name="gh", connection_type="github", credentials={"token": TOKEN})
    response = root_api.patch(f"{URL}/gh", {"credentials": {"api_url": REPRODUCTION, "token": TOKEN}},
                              format="json")
    assert response.status_code == 422, response.content
    assert Connection.objects.get(name="gh").config["api_url"] == "https://api.github.com"


@pytest.mark.parametrize("api_url", [
    "https://127.0.0.1:{port}\\@api.github.com",  # urlsplit: api.github.com; urllib3: 127.0.0.1:port
    "https://127.0.0.1:{port}\\.github.com",
    "https://api.github.com@127.0.0.1:{port}",
])
def test_stored_github_api_url_never_reaches_the_listener(api_url: str) -> None:
    connection = services.connection_create(name="gh", connection_type="github", credentials={"token": TOKEN})
    with BaitListener("127.0.0.1") as trap:
        _force_config(connection, api_url=api_url.format(port=trap.port))
        outcome = connection_health_check(name="gh", force=True)
    assert trap.connections == 0 and not trap.received
    assert outcome.result.status == "unhealthy" and "token not sent" in outcome.result.detail


def _bind_https_port() -> BaitListener | None:
    try:
        return BaitListener("127.0.0.1", port=443)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EADDRINUSE):
            return None
        raise


def test_issue_reproduction_localhost_backslash_github_com_sends_nothing() -> None:
    # The exact URL of the issue connects (through urllib3) to localhost:443.
    trap = _bind_https_port()
    if trap is None:
        pytest.skip("port 443 on 127.0.0.1 is taken or needs privileges here")
    connection = services.connection_create(name="gh", connection_type="github", credentials={"token": TOKEN})
    _force_config(connection, api_url=REPRODUCTION)
    with trap:
        outcome = connection_health_check(name="gh", force=True)
    assert trap.connections == 0 and not trap.received
    assert outcome.result.status == "unhealthy"


def test_github_allowlist_is_enforced_by_the_wrapper_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even if the probe's own check said yes, the wrapper judges the host it connects to.
    monkeypatch.setattr(github, "token_host_allowed", lambda host: True)
    connection = services.connection_create(name="gh", connection_type="github", credentials={"token": TOKEN})
    with BaitListener("127.0.0.1") as trap:
        _force_config(connection, api_url=f"http://127.0.0.1:{trap.port}")
        outcome = connection_health_check(name="gh", force=True)
    assert trap.connections == 0
    assert "127.0.0.1 is not a host this call may send to" in outcome.result.detail


def test_github_enterprise_host_listed_by_the_operator_gets_the_token(integrations_config: Any) -> None:
    with BaitListener("127.0.0.1", protocol="http") as trap:
        integrations_config({"health": {"github_allowed_hosts": ["127.0.0.1"]}})
        services.connection_create(name="gh", connection_type="github",
                                   credentials={"token": TOKEN, "api_url": f"http://127.0.0.1:{trap.port}"})
        connection_health_check(name="gh", force=True)
    assert trap.connections == 1 and TOKEN.encode() in trap.received


def test_stored_generic_http_base_url_with_userinfo_trick_is_refused_at_connect() -> None:
    connection = services.connection_create(name="api", connection_type="generic_http",
                                            credentials={"base_url": "https://api.example.com", "token": TOKEN})
    with BaitListener("127.0.0.1") as trap:
        _force_config(connection, base_url=f"http://127.0.0.1:{trap.port}\\@api.example.com/")
        outcome = connection_health_check(name="api", force=True)
    assert trap.connections == 0
    assert "refused, the URL must not contain a backslash" in outcome.result.detail


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_probe_of_url_with_percent_reports_the_connection_failure() -> None:
    # Issue 12: "failed unexpectedly (ValueError)" from %-formatting the URL into the message.
    port = _closed_port()
    services.connection_create(name="pct", connection_type="generic_http",
                               credentials={"base_url": f"http://127.0.0.1:{port}/a%20b"})
    outcome = connection_health_check(name="pct", force=True)
    assert "unexpectedly" not in outcome.result.detail
    assert outcome.result.detail.startswith(f"HEAD http://127.0.0.1:{port}/a%20b: connection failed")


def test_oauth_initiate_with_percent_in_token_url_is_503_not_500(root_api: APIClient) -> None:
    port = _closed_port()
    services.connection_create(name="cc", connection_type="oauth_app", credentials={
        "client_id": "c", "client_secret": "s", "token_url": f"http://127.0.0.1:{port}/a%20b"})
    response = root_api.post("/api/v1/oauth/initiate", {"connection_name": "cc", "grant_type": "client_credentials"},
                             format="json")
    assert response.status_code == 503, response.content
    assert "connection failed" in response.json()["detail"] and "a%20b" in response.json()["detail"]

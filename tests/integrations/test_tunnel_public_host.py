"""Issue 12 §4: through the tunnel's public host only the receiver and the OAuth callback answer,
whatever forwarded headers or host spelling the caller sends (full middleware chain)."""
from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PUBLIC = "k3j4h5.ngrok-free.app"


@pytest.fixture
def staff_browser(operator_user: Any) -> Client:
    client = Client()
    client.force_login(operator_user)
    return client


@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/connections"])
def test_forwarded_host_from_the_caller_does_not_make_the_tunnel_local(staff_browser: Client, path: str) -> None:
    response = staff_browser.get(path, HTTP_HOST=PUBLIC, HTTP_X_FORWARDED_HOST="127.0.0.1",
                                 HTTP_X_FORWARDED_FOR="127.0.0.1", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("host", [f"{PUBLIC}.", f"{PUBLIC}.:443", PUBLIC.upper(), f"{PUBLIC}:443"])
@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/connections"])
def test_host_spellings_of_the_tunnel_are_refused(staff_browser: Client, host: str, path: str) -> None:
    assert staff_browser.get(path, HTTP_HOST=host).status_code == 404


def test_the_receiver_and_callback_stay_reachable_through_the_tunnel(staff_browser: Client) -> None:
    # Not 404 from the guard: the receiver answers for itself (unknown connection), the
    # callback renders its refusal.
    receiver = staff_browser.post("/api/v1/webhooks/nobody/push", data=b"{}", content_type="application/json",
                                  HTTP_HOST=f"{PUBLIC}.")
    assert receiver.status_code != 404 or receiver.json().get("code") != "not_found"
    assert staff_browser.get("/api/v1/oauth/callback", HTTP_HOST=PUBLIC).status_code != 404


def test_development_mode_treats_unknown_hosts_as_public(staff_browser: Client, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    for host in ("tunnel.example.net", "203.0.113.5", "myhost.lan:8000"):
        assert staff_browser.get("/api/v1/connections", HTTP_HOST=host).status_code == 404, host
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost"):
        assert staff_browser.get("/api/v1/connections", HTTP_HOST=host).status_code == 200, host
    # A name the operator lists beside * is a local name.
    settings.ALLOWED_HOSTS = ["*", "myhost.lan"]
    assert staff_browser.get("/api/v1/connections", HTTP_HOST="myhost.lan:8000").status_code == 200


def test_production_hosts_listed_in_allowed_hosts_are_local(staff_browser: Client, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["integrations.example.com", ".ngrok-free.app"]
    assert staff_browser.get("/api/v1/connections", HTTP_HOST="integrations.example.com").status_code == 200
    assert staff_browser.get("/api/v1/connections", HTTP_HOST=PUBLIC).status_code == 404


def test_a_trusted_proxy_can_only_make_a_request_more_public(staff_browser: Client, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"trusted_proxies": ["127.0.0.1/32"]}
    # A local front door forwarding the tunnel's host: public.
    assert staff_browser.get("/api/v1/connections", HTTP_HOST="localhost", HTTP_X_FORWARDED_HOST=PUBLIC,
                             REMOTE_ADDR="127.0.0.1").status_code == 404
    # A forwarded local name never makes the tunnel's Host local.
    assert staff_browser.get("/api/v1/connections", HTTP_HOST=PUBLIC, HTTP_X_FORWARDED_HOST="localhost",
                             REMOTE_ADDR="127.0.0.1").status_code == 404
    # From an untrusted peer the forwarded host is ignored.
    assert staff_browser.get("/api/v1/connections", HTTP_HOST="localhost", HTTP_X_FORWARDED_HOST=PUBLIC,
                             REMOTE_ADDR="203.0.113.5").status_code == 200

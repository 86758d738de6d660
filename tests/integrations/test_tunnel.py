"""Tunnel: API paths, the owner driving pyngrok against a fake agent, the public-host restriction."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.test import RequestFactory
from django.utils import timezone

from integrations import services as connection_services
from integrations import tunnel
from integrations.models import TunnelState
from synthorg.models import AuditEvent
from synthorg.tunnel_middleware import TunnelHostMiddleware
from tests.peers.fake_ngrok.fixtures import FakeNgrok, fake_ngrok  # noqa: F401  (fixture)

# pyngrok waits on the agent's output: every test is bounded.
pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]

URL = "/api/v1/integrations/tunnel"
TOKEN = "ngrok-test-token-abc123"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    tunnel.clear_cache()
    yield
    tunnel.clear_cache()


@pytest.fixture
def tunnel_on(settings: Any, monkeypatch: pytest.MonkeyPatch, fake_ngrok: FakeNgrok  # noqa: F811
              ) -> Callable[..., FakeNgrok]:
    def apply(token: str | None = TOKEN, **keys: Any) -> FakeNgrok:
        if token:
            monkeypatch.setenv("SYNTHORG_TEST_NGROK_TOKEN", token)
        else:
            monkeypatch.delenv("SYNTHORG_TEST_NGROK_TOKEN", raising=False)
        settings.SYNTHORG_CONFIG_OVERRIDES = {"tunnel": {
            "enabled": True, "auth_token_env": "SYNTHORG_TEST_NGROK_TOKEN", "ngrok_path": str(fake_ngrok.path),
            "startup_timeout_seconds": 10, **keys}}
        return fake_ngrok

    return apply


def test_start_when_disabled_is_409_naming_the_setting(operator_client: Any) -> None:
    response = operator_client.post(f"{URL}/start")
    assert response.status_code == 409
    assert response.json()["code"] == "tunnel_disabled"
    assert "integrations.tunnel.enabled" in response.json()["detail"]
    assert not TunnelState.objects.exists()


def test_start_without_token_is_503_before_anything_starts(operator_client: Any, tunnel_on: Any) -> None:
    agent = tunnel_on(token=None)
    response = operator_client.post(f"{URL}/start")
    assert response.status_code == 503
    assert response.json()["code"] == "tunnel_auth_token_missing"
    assert "SYNTHORG_TEST_NGROK_TOKEN" in response.json()["detail"]
    assert agent.events() == []
    assert not TunnelState.objects.exists()


def test_start_without_agent_binary_is_503_and_never_downloads(operator_client: Any, tunnel_on: Any,
                                                               tmp_path: Any, monkeypatch: Any) -> None:
    from pyngrok import installer

    monkeypatch.setattr(installer, "install_ngrok", lambda *a, **k: pytest.fail("pyngrok tried to download"))
    tunnel_on(ngrok_path=str(tmp_path / "no-such-ngrok"))
    response = operator_client.post(f"{URL}/start")
    assert response.status_code == 503
    assert response.json()["code"] == "ngrok_not_installed"
    assert "never downloaded" in response.json()["detail"]


def test_start_records_desired_state_idempotently_and_audits_once(operator_client: Any, tunnel_on: Any) -> None:
    agent = tunnel_on()
    first = operator_client.post(f"{URL}/start")
    second = operator_client.post(f"{URL}/start")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert first.json()["desired"] == "running" and first.json()["running"] is False
    assert AuditEvent.objects.filter(action="tunnel.start").count() == 1
    assert agent.events() == []  # the web process never runs the agent


def test_start_and_stop_need_permission(user_client: Any, api_client: Any) -> None:
    assert user_client.post(f"{URL}/start").status_code == 403
    assert user_client.post(f"{URL}/stop").status_code == 403
    assert api_client.get(f"{URL}/status").status_code == 401


def test_superuser_may_control_the_tunnel(superuser: Any, api_client: Any, tunnel_on: Any) -> None:
    tunnel_on()
    api_client.force_authenticate(superuser)
    assert api_client.post(f"{URL}/start").status_code == 202


def test_status_reports_without_starting_anything(user_client: Any, tunnel_on: Any) -> None:
    agent = tunnel_on()
    body = user_client.get(f"{URL}/status").json()
    assert body["enabled"] is True and body["running"] is False and body["public_url"] is None
    assert body["has_auth_token"] is True and body["webhook_urls"] == {}
    assert agent.events() == []
    assert not TunnelState.objects.exists()


def test_owner_starts_the_agent_through_pyngrok_and_every_webhook_url_uses_it(
        operator_client: Any, user_client: Any, tunnel_on: Any) -> None:
    agent = tunnel_on(local_port=8123)
    connection_services.connection_create(name="hooks", connection_type="github", credentials={"token": "t"})
    operator_client.post(f"{URL}/start")
    owner = tunnel.TunnelOwner(owner_id="test-owner")
    try:
        owner.reconcile()
        body = user_client.get(f"{URL}/status").json()
        assert body["running"] is True, body
        assert body["public_url"].startswith("https://") and body["public_url"].endswith(".ngrok-free.app")
        assert body["webhook_urls"] == {"hooks": f"{body['public_url']}/api/v1/webhooks/hooks/auto"}
        from synthorg.public_url import webhook_url

        assert webhook_url("hooks") == f"{body['public_url']}/api/v1/webhooks/hooks/auto"
        invocation = agent.events()[0]
        assert invocation["argv"][:2] == ["start", "--none"]
        # The token went through the agent's config file: not argv, not this process's env.
        assert invocation["token_in_config"] == TOKEN and invocation["token_in_argv"] is False
        assert invocation["token_in_env"] is False
        assert TOKEN not in (tmp_var_ngrok_config()).read_text()  # removed once the agent started
        created = next(e for e in agent.events() if e.get("api") == "POST")
        assert created["path"] == "/api/endpoints"
        assert created["body"]["upstream"] == {"url": "http://localhost:8123"}
        owner.reconcile()  # already running: nothing new
        assert len([e for e in agent.events() if "argv" in e]) == 1
    finally:
        owner.shutdown()
    assert TunnelState.objects.get().status == TunnelState.Status.STOPPED


def test_stop_clears_state_at_once_and_the_owner_stops_the_agent(operator_client: Any, tunnel_on: Any) -> None:
    tunnel_on()
    operator_client.post(f"{URL}/start")
    owner = tunnel.TunnelOwner(owner_id="test-owner")
    try:
        owner.reconcile()
        assert owner._agent is not None and owner._agent.is_running()
        body = operator_client.post(f"{URL}/stop").json()
        assert body["running"] is False and body["public_url"] is None and body["desired"] == "stopped"
        assert tunnel.tunnel_public_url() is None
        owner.reconcile()
        assert not owner._agent.is_running()
    finally:
        owner.shutdown()
    assert AuditEvent.objects.filter(action="tunnel.stop").count() == 1
    operator_client.post(f"{URL}/stop")
    assert AuditEvent.objects.filter(action="tunnel.stop").count() == 1


def tmp_var_ngrok_config() -> Any:
    from pathlib import Path

    from django.conf import settings as django_settings

    return Path(django_settings.VAR_DIR) / "ngrok" / "ngrok.yml"


def test_the_same_owner_starts_again_after_a_stop_without_touching_the_environment(
        operator_client: Any, tunnel_on: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 12 §4: the default auth_token_env is NGROK_AUTHTOKEN, which start() used to pop.
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    agent = tunnel_on(token=None, auth_token_env="NGROK_AUTHTOKEN")
    before = dict(__import__("os").environ)
    owner = tunnel.TunnelOwner(owner_id="test-owner")
    try:
        for _ in range(2):
            assert operator_client.post(f"{URL}/start").status_code == 202
            owner.reconcile()
            state = TunnelState.objects.get()
            assert state.status == TunnelState.Status.RUNNING and state.public_url, state.error
            assert dict(__import__("os").environ) == before
            operator_client.post(f"{URL}/stop")
            owner.reconcile()
            assert not owner._agent.is_running()
    finally:
        owner.shutdown()
    starts = [e for e in agent.events() if "argv" in e]
    assert len(starts) == 2 and all(e["token_in_argv"] is False for e in starts)
    config = tmp_var_ngrok_config()
    assert TOKEN not in config.read_text() and config.stat().st_mode & 0o077 == 0


def test_agent_refusing_the_token_is_recorded_as_an_error(operator_client: Any, tunnel_on: Any,
                                                          monkeypatch: Any) -> None:
    tunnel_on()
    monkeypatch.setenv("FAKE_NGROK_MODE", "crash")
    operator_client.post(f"{URL}/start")
    owner = tunnel.TunnelOwner(owner_id="test-owner")
    try:
        owner.reconcile()
        state = TunnelState.objects.get()
    finally:
        owner.shutdown()
    assert state.status == TunnelState.Status.ERROR
    assert "ERR_NGROK_4018" in state.error
    assert TOKEN not in state.error


def test_agent_that_never_starts_times_out(operator_client: Any, tunnel_on: Any, monkeypatch: Any) -> None:
    tunnel_on(startup_timeout_seconds=1)
    monkeypatch.setenv("FAKE_NGROK_MODE", "hang")
    operator_client.post(f"{URL}/start")
    owner = tunnel.TunnelOwner(owner_id="test-owner")
    owner.reconcile()
    state = TunnelState.objects.get()
    assert state.status == TunnelState.Status.ERROR
    assert "unable to start" in state.error
    owner.shutdown()


def test_a_second_owner_defers_to_a_live_one(tunnel_on: Any) -> None:
    tunnel_on()
    TunnelState.objects.create(pk=1, owner="elsewhere:1", owner_heartbeat_at=timezone.now(),
                               desired=TunnelState.Desired.RUNNING)
    owner = tunnel.TunnelOwner(owner_id="test-owner")
    owner.reconcile()
    assert owner._agent is None
    assert TunnelState.objects.get().owner == "elsewhere:1"


def test_a_dead_owner_is_not_reported_running(user_client: Any, tunnel_on: Any) -> None:
    tunnel_on()
    TunnelState.objects.create(pk=1, owner="gone:1", status=TunnelState.Status.RUNNING,
                               desired=TunnelState.Desired.RUNNING, public_url="https://old.ngrok-free.app",
                               owner_heartbeat_at=timezone.now() - timezone.timedelta(minutes=5))
    body = user_client.get(f"{URL}/status").json()
    assert body["running"] is False and body["public_url"] is None
    assert "has not reported" in body["error"]


def test_disabled_tunnel_never_provides_a_public_url(settings: Any) -> None:
    TunnelState.objects.create(pk=1, owner="x", status=TunnelState.Status.RUNNING,
                               public_url="https://abc.ngrok-free.app", owner_heartbeat_at=timezone.now())
    assert tunnel.tunnel_public_url() is None


@pytest.mark.django_db(transaction=True)
def test_tunnel_command_owns_the_agent_until_stopped(tunnel_on: Any) -> None:
    from integrations.management.commands import tunnel as command

    tunnel_on()
    tunnel.tunnel_start()
    runner = threading.Thread(target=call_command, args=("tunnel", "--interval", "0.2"), daemon=True)
    runner.start()
    try:
        for _ in range(100):
            state = TunnelState.objects.get()
            if state.status == TunnelState.Status.RUNNING:
                break
            threading.Event().wait(0.1)
        assert state.status == TunnelState.Status.RUNNING and state.public_url
    finally:
        command.stop_event.set()
        runner.join(timeout=20)
    assert not runner.is_alive()
    state = TunnelState.objects.get()
    assert state.status == TunnelState.Status.STOPPED and state.public_url == "" and state.owner == ""


# --- the public host restriction ---------------------------------------------------------------

def _through(host: str, path: str) -> int:
    middleware = TunnelHostMiddleware(lambda request: __import__("django.http").http.HttpResponse("ok"))
    return middleware(RequestFactory().get(path, HTTP_HOST=host)).status_code


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/webhooks/hooks/push", 200), ("/api/v1/oauth/callback", 200), ("/admin/", 404),
    ("/api/v1/connections", 404), ("/api/docs/", 404), ("/api/v1/integrations/tunnel/status", 404),
    ("/api/v1/webhooks/hooks/push/../../../admin/", 404),
])
def test_tunnel_host_reaches_only_webhooks_and_oauth_callback(path: str, status: int) -> None:
    assert _through("abc123.ngrok-free.app", path) == status


def test_recorded_public_host_is_restricted_too(tunnel_on: Any) -> None:
    tunnel_on()
    TunnelState.objects.create(pk=1, owner="x", status=TunnelState.Status.RUNNING,
                               public_url="https://tunnel.example.net", owner_heartbeat_at=timezone.now())
    assert _through("tunnel.example.net", "/admin/") == 404
    assert _through("tunnel.example.net:443", "/api/v1/webhooks/a/b") == 200


def test_local_host_reaches_everything(settings: Any) -> None:
    assert _through("localhost:8000", "/admin/") == 200
    assert _through("127.0.0.1:8000", "/admin/") == 200
    assert _through("[::1]:8000", "/admin/") == 200
    settings.ALLOWED_HOSTS = ["synthorg.internal", ".ngrok-free.app"]
    assert _through("synthorg.internal", "/api/v1/connections") == 200
    # Allowing the tunnel's domain (so webhooks pass host validation) never makes it local.
    assert _through("abc.ngrok-free.app", "/api/v1/connections") == 404

"""Every console control that changes state: POST only (405 on GET), CSRF (403 without the
token), its own permission (403 without it, nothing changed), and it works with it.

Each control is declared once (`Control`) with the action of `synthorg.permissions.ACTIONS`
it performs, the same table the API asks (its endpoints are declared the same way in
tests/synthorg/test_api_permissions.py); the cases are generated for all of them.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from catalog import services as catalog_services
from catalog.models import Installation, VerifyJob
from integrations import services as connection_services
from integrations.models import Connection, TunnelState
from oauthflow import services as oauth_services
from oauthflow.models import OAuthDeviceFlow, OAuthState
from synthorg import permissions
from synthorg.models import AuditEvent
from tests.admin_console.conftest import CANARY_TOKEN, ConsoleClient
from tests.peers.device_stub import DeviceStub
from tests.permissions import SERVICE_APPS
from webhooks.models import WorkflowRun

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Control:
    name: str
    action: str  # in synthorg.permissions.ACTIONS
    # Prepares the state; returns (url, POST data, context for the checks).
    setup: Callable[[Any], tuple[str, dict[str, Any], Any]]
    done: Callable[[Any, Any], None]  # the effect happened (given the context and the response)
    untouched: Callable[[Any], None]  # nothing happened

    @property
    def permissions(self) -> tuple[str, ...]:
        """The fewest permissions that grant the action."""
        need = permissions.need(self.action)
        return need.all_of + need.any_of[:1]


# --- setups -----------------------------------------------------------------------------------

def _unreachable_http(request: Any) -> tuple[str, dict[str, Any], Any]:
    connection = connection_services.connection_create(
        name="http-console", connection_type="generic_http", credentials={"base_url": "http://127.0.0.1:9/"})
    return reverse("admin:integrations_connection_check", args=[connection.pk]), {}, connection


def _checked(connection: Connection, response: Any) -> None:
    assert response.status_code == 302
    assert Connection.objects.get(pk=connection.pk).health_checked_at is not None


def _not_checked(connection: Connection) -> None:
    assert Connection.objects.get(pk=connection.pk).health_checked_at is None


def _oauth_app(request: Any, **overrides: Any) -> Connection:
    credentials = {"client_id": "console-client", "client_secret": "console-client-secret-value",
                   "auth_url": "http://127.0.0.1:9/authorize", "token_url": "http://127.0.0.1:9/token",
                   "scopes": ["api:read"], **overrides}
    return connection_services.connection_create(name=f"idp-{uuid.uuid4().hex[:6]}", connection_type="oauth_app",
                                                 credentials=credentials)


def _connect(request: Any) -> tuple[str, dict[str, Any], Any]:
    request.getfixturevalue("settings").SYNTHORG_CONFIG_OVERRIDES = {
        "oauth": {"redirect_uri_base": "http://testserver"}}
    connection = _oauth_app(request)
    return reverse("admin:oauthflow_connect_start", args=[connection.name]), {"scopes": "api:read"}, connection


def _connected(connection: Connection, response: Any) -> None:
    assert response.status_code == 302
    assert response["Location"].startswith("http://127.0.0.1:9/authorize?")
    assert OAuthState.objects.filter(connection=connection).count() == 1


def _not_connected(connection: Connection) -> None:
    assert not OAuthState.objects.filter(connection=connection).exists()


def _device(request: Any) -> tuple[str, dict[str, Any], Any]:
    request.getfixturevalue("settings").SYNTHORG_CONFIG_OVERRIDES = {
        "oauth": {"redirect_uri_base": "http://testserver"}}
    stub: DeviceStub = request.getfixturevalue("device_stub")
    request.getfixturevalue("monkeypatch").setattr(oauth_services, "schedule_device_poll", lambda *a: None)
    connection = _oauth_app(request, device_authorization_url=stub.device_authorization_endpoint,
                            token_url=stub.token_endpoint)
    return reverse("admin:oauthflow_device_start", args=[connection.name]), {}, connection


def _device_started(connection: Connection, response: Any) -> None:
    flow = OAuthDeviceFlow.objects.get(connection=connection)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:oauthflow_device", args=[flow.pk])


def _device_not_started(connection: Connection) -> None:
    assert not OAuthDeviceFlow.objects.filter(connection=connection).exists()


def _install(request: Any) -> tuple[str, dict[str, Any], Any]:
    return reverse("admin:catalog_install", args=["memory"]), {}, "memory"


def _installed(entry_id: str, response: Any) -> None:
    assert response.status_code == 302
    assert Installation.objects.filter(entry_id=entry_id).exists()


def _not_installed(entry_id: str) -> None:
    assert not Installation.objects.filter(entry_id=entry_id).exists()


def _uninstall(request: Any) -> tuple[str, dict[str, Any], Any]:
    catalog_services.installation_install(entry_id="memory")
    return reverse("admin:catalog_uninstall", args=["memory"]), {}, "memory"


def _still_installed(entry_id: str) -> None:
    assert Installation.objects.filter(entry_id=entry_id).exists()


def _verify(request: Any) -> tuple[str, dict[str, Any], Any]:
    catalog_services.installation_install(entry_id="memory")
    return reverse("admin:catalog_verify", args=["memory"]), {}, "memory"


def _verify_queued(entry_id: str, response: Any) -> None:
    assert response.status_code == 302
    assert VerifyJob.objects.filter(entry_id=entry_id).count() == 1


def _no_verify_job(entry_id: str) -> None:
    assert not VerifyJob.objects.exists()


def _tunnel_config(request: Any) -> None:
    monkeypatch = request.getfixturevalue("monkeypatch")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    agent = tmp_path / "ngrok"
    agent.write_text("#!/bin/sh\nexit 0\n")
    agent.chmod(0o755)
    monkeypatch.setenv("CONSOLE_NGROK_TOKEN", "ngrok-token-not-shown-0001")
    request.getfixturevalue("settings").SYNTHORG_CONFIG_OVERRIDES = {"tunnel": {
        "enabled": True, "auth_token_env": "CONSOLE_NGROK_TOKEN", "ngrok_path": str(agent)}}


def _tunnel_start(request: Any) -> tuple[str, dict[str, Any], Any]:
    _tunnel_config(request)
    return reverse("admin:integrations_tunnel_start"), {}, None


def _tunnel_wanted(_: Any, response: Any) -> None:
    assert response.status_code == 302
    assert TunnelState.objects.get().desired == TunnelState.Desired.RUNNING


def _tunnel_not_wanted(_: Any) -> None:
    assert not TunnelState.objects.filter(desired=TunnelState.Desired.RUNNING).exists()


def _tunnel_stop(request: Any) -> tuple[str, dict[str, Any], Any]:
    _tunnel_config(request)
    TunnelState.objects.create(pk=1, desired=TunnelState.Desired.RUNNING, status=TunnelState.Status.RUNNING,
                               public_url="https://console-test.ngrok.example")
    return reverse("admin:integrations_tunnel_stop"), {}, None


def _tunnel_stopped(_: Any, response: Any) -> None:
    assert response.status_code == 302
    state = TunnelState.objects.get()
    assert (state.desired, state.public_url) == (TunnelState.Desired.STOPPED, "")


def _tunnel_still_running(_: Any) -> None:
    assert TunnelState.objects.get().desired == TunnelState.Desired.RUNNING


def _retry(request: Any) -> tuple[str, dict[str, Any], Any]:
    run = WorkflowRun.objects.create(rule_name="console-rule", workflow="noop", event_id=uuid.uuid4(),
                                     status=WorkflowRun.Status.FAILED, attempts=3, error="boom")
    return reverse("admin:webhooks_workflowrun_retry", args=[run.pk]), {}, run


def _retried(run: WorkflowRun, response: Any) -> None:
    assert response.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.attempts) == (WorkflowRun.Status.PENDING, 0)
    assert AuditEvent.objects.filter(action="workflow_run.retry", target=str(run.pk)).exists()


def _not_retried(run: WorkflowRun) -> None:
    run.refresh_from_db()
    assert run.status == WorkflowRun.Status.FAILED


def _reveal(request: Any) -> tuple[str, dict[str, Any], Any]:
    connection = request.getfixturevalue("github")
    return reverse("admin:integrations_connection_reveal", args=[connection.pk]), {"reveal_field": "token"}, connection


def _revealed(connection: Connection, response: Any) -> None:
    assert response.status_code == 200
    assert CANARY_TOKEN in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert AuditEvent.objects.filter(action="secret.reveal", target=connection.name, outcome="success").exists()


def _not_revealed(connection: Connection) -> None:
    assert not AuditEvent.objects.filter(action="secret.reveal", outcome="success").exists()


CONTROLS = [
    Control("check_now", "connection.check", _unreachable_http, _checked, _not_checked),
    Control("connect", "oauth.grant_start", _connect, _connected, _not_connected),
    Control("device_flow", "oauth.grant_start", _device, _device_started, _device_not_started),
    Control("install", "mcp.install", _install, _installed, _not_installed),
    Control("uninstall", "mcp.uninstall", _uninstall, lambda e, r: _not_installed(e), _still_installed),
    Control("verify", "mcp.verify", _verify, _verify_queued, _no_verify_job),
    Control("tunnel_start", "tunnel.control", _tunnel_start, _tunnel_wanted, _tunnel_not_wanted),
    Control("tunnel_stop", "tunnel.control", _tunnel_stop, _tunnel_stopped, _tunnel_still_running),
    Control("retry", "workflow_run.retry", _retry, _retried, _not_retried),
    Control("reveal", "connection.reveal_secret", _reveal, _revealed, _not_revealed),
]
IDS = [c.name for c in CONTROLS]


@pytest.mark.parametrize("control", CONTROLS, ids=IDS)
def test_get_is_refused_with_405(control: Control, request: Any, console: Callable[..., ConsoleClient]) -> None:
    url, _, context = control.setup(request)
    client = console(*control.permissions)

    response = client.get(url)

    assert response.status_code == 405
    control.untouched(context)


@pytest.mark.parametrize("control", CONTROLS, ids=IDS)
def test_post_without_csrf_token_is_refused_with_403(control: Control, request: Any,
                                                     console: Callable[..., ConsoleClient]) -> None:
    url, data, context = control.setup(request)
    client = console(*control.permissions)

    response = client.post_without_token(url, data)

    assert response.status_code == 403
    assert b"CSRF" in response.content
    control.untouched(context)


@pytest.mark.parametrize("control", CONTROLS, ids=IDS)
def test_staff_without_permission_is_refused_with_403(control: Control, request: Any,
                                                      console: Callable[..., ConsoleClient]) -> None:
    url, data, context = control.setup(request)
    client = console()  # staff, no permission at all

    response = client.post(url, data)

    assert response.status_code == 403
    control.untouched(context)


@pytest.mark.parametrize("control", CONTROLS, ids=IDS)
def test_holder_of_the_permission_changes_state(control: Control, request: Any,
                                                console: Callable[..., ConsoleClient]) -> None:
    url, data, context = control.setup(request)
    client = console(*control.permissions)

    response = client.post(url, data)

    control.done(context, response)


@pytest.mark.parametrize("control", CONTROLS, ids=IDS)
def test_anonymous_post_is_sent_to_the_login_page(control: Control, request: Any) -> None:
    url, data, context = control.setup(request)
    client = ConsoleClient()

    response = client.post(url, data)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    control.untouched(context)


@pytest.mark.parametrize("control", CONTROLS, ids=IDS)
def test_holder_of_every_other_permission_is_refused(control: Control, request: Any,
                                                     console: Callable[..., ConsoleClient]) -> None:
    url, data, context = control.setup(request)
    need = permissions.need(control.action)
    everything = {f"{app}.{codename}" for app, codename in Permission.objects.filter(
        content_type__app_label__in=SERVICE_APPS).values_list("content_type__app_label", "codename")}
    missing = set(need.all_of[:1]) if need.all_of else set(need.any_of)
    client = console(*sorted(everything - missing))

    response = client.post(url, data)

    assert response.status_code == 403, missing
    control.untouched(context)

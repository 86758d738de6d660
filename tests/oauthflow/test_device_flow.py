"""Device authorization (RFC 8628): real provider for pending/approve/deny/expire, the stub for slow_down."""
from __future__ import annotations

import io
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from oauthflow import services, tasks
from oauthflow.models import OAuthDeviceFlow, OAuthToken
from tests.peers.device_stub import DeviceStub, pending, slow_down, token
from tests.peers.oidc_peer import OIDCPeer

pytestmark = pytest.mark.django_db


@pytest.fixture
def scheduled(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """Record the countdowns instead of queueing (eager Celery cannot wait); tests poll by hand."""
    calls: list[tuple[int, float]] = []
    monkeypatch.setattr(services, "schedule_device_poll", lambda flow_id, countdown: calls.append((flow_id, countdown)))
    return calls


def due_now(flow: OAuthDeviceFlow) -> None:
    OAuthDeviceFlow.objects.filter(pk=flow.pk).update(next_poll_at=timezone.now())


def poll_in_thread(flow_id: int) -> None:
    try:
        tasks.device_flow_poll_task(flow_id)
    finally:
        connections.close_all()  # this thread's own connection, so the test database can be dropped


def poll(flow: OAuthDeviceFlow) -> float | None:
    due_now(flow)
    return tasks.device_flow_poll_task(flow.pk)


def test_device_flow_pending_then_approved_connects(make_connection: Any, oidc: OIDCPeer, operator_client: Any,
                                                    scheduled: list[Any], django_capture_on_commit_callbacks: Any
                                                    ) -> None:
    connection = make_connection()
    with django_capture_on_commit_callbacks(execute=True):
        body = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name,
                                                            "grant_type": "device_code"}, format="json").json()
    flow = OAuthDeviceFlow.objects.get(connection=connection)
    assert body["user_code"] == flow.user_code and body["verification_uri"].startswith(oidc.issuer)
    assert body["interval"] == 1 and scheduled == [(flow.pk, 1)]
    status = operator_client.get(f"/api/v1/oauth/status/{connection.name}").json()
    assert status["pending_device_flow"]["user_code"] == flow.user_code

    assert poll(flow) == 1.0  # authorization_pending: poll again after the interval
    oidc.approve_device(flow.user_code)
    assert poll(flow) is None

    flow.refresh_from_db()
    assert flow.status == OAuthDeviceFlow.Status.APPROVED
    assert OAuthToken.objects.get(connection=connection).has_refresh_token
    assert services.get_access_token(connection)
    assert "pending_device_flow" not in operator_client.get(f"/api/v1/oauth/status/{connection.name}").json()


def test_early_poll_waits_without_calling_provider(make_connection: Any, oidc: OIDCPeer, scheduled: Any) -> None:
    flow = services.device_flow_start(connection_name=make_connection().name)
    OAuthDeviceFlow.objects.filter(pk=flow.pk).update(next_poll_at=timezone.now() + timedelta(seconds=30))

    delay = tasks.device_flow_poll_task(flow.pk)

    assert 25 < delay <= 30
    assert oidc.token_requests() == 0


def test_device_flow_denied_ends_denied(make_connection: Any, oidc: OIDCPeer, scheduled: Any) -> None:
    flow = services.device_flow_start(connection_name=make_connection().name)
    oidc.deny_device(flow.user_code)

    assert poll(flow) is None

    flow.refresh_from_db()
    assert flow.status == OAuthDeviceFlow.Status.DENIED
    assert not OAuthToken.objects.exists()


def test_device_code_expired_at_provider_ends_expired(make_connection: Any, oidc: OIDCPeer, scheduled: Any) -> None:
    flow = services.device_flow_start(connection_name=make_connection().name)
    oidc.expire_device_code(flow.user_code)

    assert poll(flow) is None

    assert OAuthDeviceFlow.objects.get(pk=flow.pk).status == OAuthDeviceFlow.Status.EXPIRED


def test_configured_timeout_bounds_the_flow(make_connection: Any, oidc: OIDCPeer, scheduled: Any,
                                            settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": "http://testserver",
                                                    "device_flow_timeout_seconds": 30}}
    flow = services.device_flow_start(connection_name=make_connection().name)
    assert flow.expires_at - flow.created_at <= timedelta(seconds=31)  # provider offered 600 s
    OAuthDeviceFlow.objects.filter(pk=flow.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert poll(flow) is None

    assert OAuthDeviceFlow.objects.get(pk=flow.pk).status == OAuthDeviceFlow.Status.EXPIRED
    assert oidc.token_requests() == 0


def test_slow_down_adds_five_seconds(device_stub: DeviceStub, make_connection: Any, scheduled: Any) -> None:
    device_stub.interval = 2
    device_stub.set_script([pending(), slow_down(), pending(), token()])
    connection = make_connection(register=False, device_authorization_url=device_stub.device_authorization_endpoint,
                                 token_url=device_stub.token_endpoint)
    flow = services.device_flow_start(connection_name=connection.name)

    assert [poll(flow) for _ in range(3)] == [2.0, 7.0, 7.0]
    assert OAuthDeviceFlow.objects.get(pk=flow.pk).interval_seconds == 7
    assert poll(flow) is None
    assert OAuthDeviceFlow.objects.get(pk=flow.pk).status == OAuthDeviceFlow.Status.APPROVED
    assert len(device_stub.token_polls()) == 4


def test_interval_defaults_to_configuration_when_provider_gives_none(device_stub: DeviceStub, make_connection: Any,
                                                                     scheduled: Any, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": "http://testserver",
                                                    "device_poll_interval_seconds": 3}}
    device_stub.interval = None
    connection = make_connection(register=False, device_authorization_url=device_stub.device_authorization_endpoint,
                                 token_url=device_stub.token_endpoint)

    flow = services.device_flow_start(connection_name=connection.name)

    assert flow.interval_seconds == 3


@pytest.mark.django_db(transaction=True)
def test_oauth_connect_command_completes_device_flow(make_connection: Any, oidc: OIDCPeer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in worker: each queued poll runs on a timer after its countdown, as Celery would.
    def worker(flow_id: int, countdown: float) -> None:
        threading.Timer(min(countdown, 0.3), poll_in_thread, args=[flow_id]).start()

    monkeypatch.setattr(services, "schedule_device_poll", worker)
    connection = make_connection()
    out = io.StringIO()

    def approve_when_shown() -> None:
        try:
            for _ in range(100):
                flow = OAuthDeviceFlow.objects.filter(connection=connection).first()
                if flow is not None and flow.polls >= 1:
                    oidc.approve_device(flow.user_code)
                    return
                threading.Event().wait(0.1)
        finally:
            connections.close_all()

    approver = threading.Thread(target=approve_when_shown)
    approver.start()
    call_command("oauth_connect", connection.name, "--device", "--refresh-every", "0.1", stdout=out)
    approver.join()

    text = out.getvalue()
    assert "enter the code" in text and "waiting for approval" in text and "Approved" in text
    assert OAuthToken.objects.filter(connection=connection).exists()


@pytest.mark.django_db(transaction=True)
def test_oauth_connect_command_fails_when_denied(make_connection: Any, oidc: OIDCPeer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    denied: list[int] = []

    def worker(flow_id: int, countdown: float) -> None:
        if not denied:
            denied.append(flow_id)
            oidc.deny_device(OAuthDeviceFlow.objects.get(pk=flow_id).user_code)
        threading.Timer(min(countdown, 0.3), poll_in_thread, args=[flow_id]).start()

    monkeypatch.setattr(services, "schedule_device_poll", worker)

    with pytest.raises(CommandError, match="denied"):
        call_command("oauth_connect", make_connection().name, "--device", "--refresh-every", "0.1",
                     stdout=io.StringIO())

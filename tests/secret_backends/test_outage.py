"""The secret manager down mid-run (OpenBao sealed, the moto server stopped): 503 with Retry-After
from the API and the receiver, /readyz 503, a health check that records the outage without moving
the connection toward unhealthy; everything works again when the manager returns."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection
from integrations.secrets import managed
from tests.webhooks.receiving import GITHUB_SECRET, github_body, github_headers, make_github, post
from webhooks import receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def outage(secret_backend: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A switch: ``outage(True)`` takes the manager down, ``outage(False)`` brings it back."""
    server = request.getfixturevalue("bao" if secret_backend == managed.VAULT else "moto")
    state = {"down": False}

    def switch(down: bool) -> None:
        if down == state["down"]:
            return
        if secret_backend == managed.VAULT:
            server.seal() if down else server.unseal()
        else:
            server.stop() if down else server.start()
        state["down"] = down

    yield switch
    switch(False)


def test_manager_down_then_back(secret_backend: str, outage: Any, operator_user: Any) -> None:
    operator_user.user_permissions.add(Permission.objects.get(codename="reveal_secret"))
    api = APIClient()
    api.force_authenticate(operator_user)
    connection = make_github("gh")
    services.connection_create(name="app", connection_type="oauth_app", credentials={
        "client_id": "cid", "client_secret": "cs", "token_url": "https://auth.example.com/token"})
    Connection.objects.filter(pk=connection.pk).update(health_status="healthy")
    managed.cache_clear()
    receiver.connection_cache_clear()
    body = github_body()

    outage(True)
    reveal = api.get("/api/v1/connections/gh/secrets/token")
    assert reveal.status_code == 503 and reveal.json()["code"] == "secret_backend_unavailable"
    assert int(reveal["Retry-After"]) > 0
    check = api.get("/api/v1/connections/gh/health?force=true")
    assert check.status_code == 503 and check.json()["code"] == "secret_backend_unavailable"
    connection.refresh_from_db()
    assert connection.health_status == "healthy" and connection.health_consecutive_failures == 0
    assert connection.health_last_error == "secrets unavailable: secret backend unavailable"
    delivery = post(Client(), "gh", "push", body, github_headers(body, secret=GITHUB_SECRET, delivery="d-out"))
    assert delivery.status_code == 503 and int(delivery["Retry-After"]) > 0
    ready = Client().get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["secret_backend"] != "ok"
    parts = ready.json()["checks"]["secret_manager"]
    assert parts["backend"] == secret_backend and not (parts["reachable"] and parts["unsealed"]
                                                       and parts["authenticated"])
    grant = api.post("/api/v1/oauth/initiate", {"connection_name": "app", "grant_type": "client_credentials"},
                     format="json")
    assert grant.status_code == 503 and grant.json()["code"] == "secret_backend_unavailable"
    assert int(grant["Retry-After"]) > 0

    outage(False)
    managed.managers_reset()  # a fresh login after the outage (a sealed Vault revokes nothing in dev mode)
    assert Client().get("/readyz").json()["checks"]["secret_backend"] == "ok"
    assert api.get("/api/v1/connections/gh/secrets/token").json()["value"] == "ghp_test_token_value"
    delivery = post(Client(), "gh", "push", body, github_headers(body, secret=GITHUB_SECRET, delivery="d-back"))
    assert delivery.status_code in (200, 202), delivery.content


def test_receiver_cache_hit_needs_no_manager(secret_backend: str, outage: Any) -> None:
    """A connection whose secret this process already read keeps receiving while the manager is down."""
    make_github("gh2")
    body = github_body(1)
    assert post(Client(), "gh2", "push", body, github_headers(body, delivery="d-1")).status_code in (200, 202)
    outage(True)
    body = github_body(2)
    assert post(Client(), "gh2", "push", body, github_headers(body, delivery="d-2")).status_code in (200, 202)
    services.secret_cache_clear()


def test_the_sweep_records_the_outage_without_moving_the_status(secret_backend: str, outage: Any) -> None:
    from integrations.health import connections_probe
    from integrations.models import HealthEvent

    connection = make_github("swept")
    Connection.objects.filter(pk=connection.pk).update(health_status="degraded", health_consecutive_failures=2)
    managed.cache_clear()
    outage(True)
    for _ in range(5):  # far past the unhealthy threshold, had these counted as failures
        connections_probe([connection.pk], threads=1)
    connection.refresh_from_db()
    assert (connection.health_status, connection.health_consecutive_failures) == ("degraded", 2)
    events = HealthEvent.objects.filter(connection=connection)
    assert events.count() == 5
    assert {e.detail for e in events} == {"secrets unavailable: secret backend unavailable"}
    assert {(e.previous_status, e.status) for e in events} == {("degraded", "degraded")}


def test_the_deletion_retry_is_a_periodic_task() -> None:
    from synthorg import periodic

    task = periodic.registered()["synthorg:secret-deletions-retry"]
    assert task.task == "integrations.secret_deletions_retry"

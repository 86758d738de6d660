"""GET /api/v1/connections/{name}/health (on demand) and GET /api/v1/integrations/health (the list)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection
from synthorg.models import AuditEvent
from tests.peers.http_peer import HttpPeer, Reply

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/integrations/health"


def url(name: str, query: str = "") -> str:
    return f"/api/v1/connections/{name}/health{query}"


@pytest.fixture
def peer() -> Any:
    with HttpPeer() as server:
        yield server


def make(name: str, target: str, **extra: Any) -> Connection:
    return services.connection_create(name=name, connection_type="generic_http",
                                      credentials={"base_url": target, "token": "api-tok-77"}, **extra)


def test_on_demand_probes_and_returns_raw_and_smoothed(user_client: APIClient, peer: HttpPeer) -> None:
    make("svc", peer.url("/status/200"))
    body = user_client.get(url("svc")).json()
    assert body["status"] == "healthy" and body["cached"] is False
    assert body["result"]["status"] == "healthy"
    assert body["result"]["detail"] == "HEAD: HTTP 200"
    assert body["result"]["latency_ms"] is not None and body["result"]["checked_at"]
    assert len(peer.received) == 1


def test_recent_result_returned_without_probing(user_client: APIClient, peer: HttpPeer) -> None:
    make("svc", peer.url("/status/200"))
    first = user_client.get(url("svc")).json()
    second = user_client.get(url("svc")).json()
    assert second["cached"] is True
    assert second["result"] == first["result"]
    assert len(peer.received) == 1  # the dashboard's poll spent no quota


def test_fresh_result_key_zero_always_probes(user_client: APIClient, peer: HttpPeer,
                                            integrations_config: Any) -> None:
    integrations_config({"health": {"fresh_result_seconds": 0}})
    make("svc", peer.url("/status/200"))
    user_client.get(url("svc"))
    assert user_client.get(url("svc")).json()["cached"] is False
    assert len(peer.received) == 2


def test_result_older_than_window_probes_again(user_client: APIClient, peer: HttpPeer) -> None:
    connection = make("svc", peer.url("/status/200"))
    user_client.get(url("svc"))
    Connection.objects.filter(pk=connection.pk).update(health_checked_at=timezone.now() - timedelta(seconds=31))
    assert user_client.get(url("svc")).json()["cached"] is False


def test_staff_force_probes_again(operator_client: APIClient, peer: HttpPeer) -> None:
    make("svc", peer.url("/status/200"))
    operator_client.get(url("svc"))
    assert operator_client.get(url("svc", "?force=true")).json()["cached"] is False
    assert len(peer.received) == 2


def test_non_staff_force_forbidden(user_client: APIClient, peer: HttpPeer) -> None:
    make("svc", peer.url("/status/200"))
    response = user_client.get(url("svc", "?force=true"))
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert peer.received == []


def test_on_demand_goes_through_smoothing(operator_client: APIClient, peer: HttpPeer) -> None:
    peer.script("/", Reply(200), Reply(500))
    make("svc", peer.url("/"))
    statuses = [operator_client.get(url("svc", "?force=true")).json() for _ in range(4)]
    assert [(s["result"]["status"], s["status"], s["consecutive_failures"]) for s in statuses] == [
        ("healthy", "healthy", 0), ("unhealthy", "degraded", 1), ("unhealthy", "degraded", 2),
        ("unhealthy", "unhealthy", 3)]
    change = AuditEvent.objects.filter(action="connection.health_changed").order_by("id").last()
    assert change is not None and change.actor_name == "operator"


def test_detail_never_carries_the_token(operator_client: APIClient, peer: HttpPeer) -> None:
    make("svc", peer.url("/status/401"))
    body = operator_client.get(url("svc")).content.decode()
    assert "api-tok-77" not in body


def test_unknown_connection_404(user_client: APIClient) -> None:
    response = user_client.get(url("nope"))
    assert response.status_code == 404
    assert response.json()["code"] == "connection_not_found"


def test_anonymous_401(api_client: APIClient) -> None:
    assert api_client.get(url("svc")).status_code == 401
    assert api_client.get(LIST_URL).status_code == 401


def test_bad_force_value_400(operator_client: APIClient, peer: HttpPeer) -> None:
    make("svc", peer.url("/status/200"))
    assert operator_client.get(url("svc", "?force=maybe")).status_code == 400


def test_oauth_app_reports_not_applicable(operator_client: APIClient) -> None:
    services.connection_create(name="app", connection_type="oauth_app", credentials={
        "client_id": "c", "client_secret": "s3", "token_url": "https://idp.example.test/token"})
    body = operator_client.get(url("app")).json()
    assert body["result"]["status"] == "unknown"
    assert body["status"] == "unknown"


# --- the list -------------------------------------------------------------------------------------------

def test_list_shows_current_state_without_probing(user_client: APIClient, peer: HttpPeer) -> None:
    make("a-ok", peer.url("/status/200"))
    make("b-down", peer.url("/status/500"))
    user_client.get(url("a-ok"))
    user_client.get(url("b-down"))
    received = len(peer.received)
    body = user_client.get(LIST_URL).json()
    assert len(peer.received) == received
    assert body["count"] == 2
    rows = {r["name"]: r for r in body["results"]}
    assert rows["a-ok"]["status"] == "healthy" and rows["a-ok"]["last_error"] == ""
    assert rows["b-down"]["status"] == "degraded" and "HTTP 500" in rows["b-down"]["last_error"]
    assert rows["b-down"]["consecutive_failures"] == 1
    assert set(rows["a-ok"]) >= {"checked_at", "latency_ms", "next_check_at", "check_enabled",
                                 "check_interval_seconds", "connection_type"}


def test_list_paginates_and_filters(user_client: APIClient) -> None:
    for index in range(5):
        make(f"s{index}", "http://127.0.0.1:9/")
    Connection.objects.filter(name="s3").update(health_status="unhealthy")
    page = user_client.get(f"{LIST_URL}?limit=2&offset=2").json()
    assert page["count"] == 5 and [r["name"] for r in page["results"]] == ["s2", "s3"]
    only = user_client.get(f"{LIST_URL}?status=unhealthy").json()
    assert [r["name"] for r in only["results"]] == ["s3"]
    assert user_client.get(f"{LIST_URL}?status=bogus").status_code == 400


def test_list_query_count_constant(user_client: APIClient, django_assert_max_num_queries: Any) -> None:
    for index in range(3):
        make(f"q{index}", "http://127.0.0.1:9/")
    # Token auth, the user's and their groups' permissions, count, page: none grows with the list.
    with django_assert_max_num_queries(6) as few:
        user_client.get(LIST_URL)
    for index in range(3, 30):
        make(f"q{index}", "http://127.0.0.1:9/")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert user_client.get(LIST_URL).json()["count"] == 30


# --- the reveal throttle uses the shared limiter ---------------------------------------------------------

def test_reveal_throttle_state_lives_in_the_shared_limiter(integrations_config: Any, django_user_model: Any) -> None:
    from integrations.ratelimit import get_rate_limiter

    integrations_config({"connections": {"reveal_rate_per_minute": 5}})
    services.connection_create(name="gh", connection_type="github", credentials={"token": "ghp_reveal_1"})
    reader = django_user_model.objects.create_user(username="revealer", password="pw-revealer-1")
    reader.user_permissions.add(Permission.objects.get(codename="reveal_secret"))
    client = APIClient()
    client.force_authenticate(reader)
    assert client.get("/api/v1/connections/gh/secrets/token").status_code == 200
    # Another process pausing this user's key (the limiter's shared store) refuses the next reveal.
    get_rate_limiter().pause(f"reveal:{reader.pk}", 90)
    refused = client.get("/api/v1/connections/gh/secrets/token")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 90
    assert "ghp_reveal_1" not in refused.content.decode()

"""The alerts API: the webhook sink's secret is shown once and never again; bad input is a 422
with nothing stored; a test alert; problems listed, read and acknowledged."""
from __future__ import annotations

from typing import Any

import pytest

from notifications.models import AlertRule, NotificationSink, Problem
from synthorg.models import AuditEvent
from tests.notifications.conftest import http_connection, smtp_connection, unhealthy
from tests.peers.http_peer import Reply

pytestmark = pytest.mark.django_db
BASE = "/api/v1/integrations/notifications"


def test_webhook_sink_secret_is_shown_once(operator_client: Any, http_peer: Any) -> None:
    http_connection(http_peer.url("/hook"), name="receiver")
    created = operator_client.post(f"{BASE}/sinks", {"name": "hook", "kind": "webhook", "connection": "receiver"},
                                   format="json")
    assert created.status_code == 201, created.content
    secret = created.json()["signing_secret"]
    assert secret.startswith("whsec_")
    sink_id = created.json()["id"]
    for response in (operator_client.get(f"{BASE}/sinks/{sink_id}"), operator_client.get(f"{BASE}/sinks")):
        assert response.status_code == 200 and secret not in response.content.decode()
    assert operator_client.get(f"{BASE}/sinks/{sink_id}").json()["secrets_set"] is True
    audit = AuditEvent.objects.filter(action="notifications.sink_create")
    assert audit.count() == 1 and secret not in str(audit.get().details)


@pytest.mark.parametrize("body, field", [
    ({"name": "m", "kind": "email", "connection": "relay", "settings": {"to": ["not-an-address"]}}, "to"),
    ({"name": "m", "kind": "email", "connection": "relay", "settings": {}}, "to"),
    ({"name": "m", "kind": "email", "settings": {"to": ["a@example.com"]}}, "connection"),
    ({"name": "m", "kind": "slack", "connection": "relay", "settings": {"channel": "#ops"}}, "connection"),
    ({"name": "m", "kind": "slack_webhook", "secrets": {"webhook_url": "https://evil.example.com/x"}},
     "webhook_url"),
    ({"name": "m", "kind": "webhook", "connection": "relay"}, "connection"),
    ({"name": "m", "kind": "webhook", "connection": "nope"}, "connection"),
])
def test_bad_sinks_are_422_and_store_nothing(operator_client: Any, mail_peer: Any, body: dict[str, Any],
                                             field: str) -> None:
    smtp_connection(mail_peer.port)
    response = operator_client.post(f"{BASE}/sinks", body, format="json")
    assert response.status_code == 422, response.content
    assert field in response.json()["errors"]
    assert not NotificationSink.objects.exists()


def test_unknown_kind_is_422(operator_client: Any) -> None:
    response = operator_client.post(f"{BASE}/sinks", {"name": "m", "kind": "pager"}, format="json")
    assert response.status_code == 422 and not NotificationSink.objects.exists()


def test_sink_test_endpoint(operator_client: Any, http_peer: Any) -> None:
    http_connection(http_peer.url("/hook"), name="receiver")
    http_peer.script("/hook", Reply(200))
    sink_id = operator_client.post(f"{BASE}/sinks", {"name": "hook", "kind": "webhook", "connection": "receiver"},
                                   format="json").json()["id"]
    response = operator_client.post(f"{BASE}/sinks/{sink_id}/test")
    assert response.status_code == 200 and response.json()["result"] == "sent"
    assert operator_client.post(f"{BASE}/sinks/999999/test").status_code == 404


def test_rules_crud_and_validation(operator_client: Any) -> None:
    bad = operator_client.post(f"{BASE}/rules", {"name": "r", "events": ["nope"]}, format="json")
    assert bad.status_code == 422 and "events" in bad.json()["errors"]
    bad = operator_client.post(f"{BASE}/rules", {"name": "r", "events": ["connection.unhealthy"],
                                                 "params": {"expiry_days": "x"}}, format="json")
    assert bad.status_code in (400, 422)
    created = operator_client.post(f"{BASE}/rules", {"name": "r", "events": ["credential.expiring"],
                                                     "params": {"expiry_days": 30}, "reminder_interval_seconds": 3600},
                                   format="json")
    assert created.status_code == 201, created.content
    rule_id = created.json()["id"]
    patched = operator_client.patch(f"{BASE}/rules/{rule_id}", {"enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert operator_client.delete(f"{BASE}/rules/{rule_id}").status_code == 204
    assert not AlertRule.objects.filter(pk=rule_id).exists()


def test_problems_list_detail_and_acknowledge(operator_client: Any) -> None:
    watched = http_connection("http://127.0.0.1:9/x", name="watched")
    unhealthy(watched)
    listed = operator_client.get(f"{BASE}/problems?state=open").json()
    assert listed["count"] == 1
    problem_id = listed["results"][0]["id"]
    detail = operator_client.get(f"{BASE}/problems/{problem_id}").json()
    assert detail["title"] == "Connection watched is unhealthy" and detail["history"][0]["what"] == "opened"
    acked = operator_client.post(f"{BASE}/problems/{problem_id}/acknowledge")
    assert acked.status_code == 200 and acked.json()["acknowledged_at"]
    again = operator_client.post(f"{BASE}/problems/{problem_id}/acknowledge")  # idempotent
    assert again.json()["acknowledged_at"] == acked.json()["acknowledged_at"]
    assert Problem.objects.get().acknowledged_by
    assert operator_client.get(f"{BASE}/problems?state=bogus").status_code == 400


def test_a_webhook_sink_cannot_move_to_another_receiver(operator_client: Any, http_peer: Any) -> None:
    http_connection(http_peer.url("/hook"), name="receiver")
    http_connection("http://127.0.0.1:9/elsewhere", name="elsewhere")
    sink_id = operator_client.post(f"{BASE}/sinks", {"name": "hook", "kind": "webhook", "connection": "receiver"},
                                   format="json").json()["id"]
    moved = operator_client.patch(f"{BASE}/sinks/{sink_id}", {"connection": "elsewhere"}, format="json")
    assert moved.status_code == 409 and moved.json()["code"] == "sink_secret_bound"
    assert NotificationSink.objects.get().connection.name == "receiver"
    renamed = operator_client.patch(f"{BASE}/sinks/{sink_id}", {"name": "hook-2"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["connection"] == "receiver"

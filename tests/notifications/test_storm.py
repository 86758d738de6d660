"""No storms: 500 connections failing in one sweep make one digest per sink, not 500 messages;
their recovery makes one more."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from integrations.health import health_record
from integrations.models import Connection
from integrations.types.probing import HealthResult
from notifications import sending, services
from notifications.models import Alert, Problem
from tests.notifications.conftest import T0, http_connection
from tests.peers.http_peer import Reply

pytestmark = pytest.mark.django_db

N = 500


def _fail_all(ids: list[int], status: str) -> None:
    for pk in ids:
        health_record(connection_id=pk, result=HealthResult(status, "x", 5, T0))


def test_500_failing_connections_make_one_digest_per_sink(http_peer, mail_peer) -> None:
    from tests.notifications.conftest import smtp_connection

    http_peer.script("/hook", Reply(200))
    receiver = http_connection(http_peer.url("/hook"))
    services.sink_create(name="hook", kind="webhook", connection=receiver.name)
    relay = smtp_connection(mail_peer.port)
    services.sink_create(name="mail", kind="email", connection=relay.name, settings={"to": ["ops@example.com"]})
    # One failure away from unhealthy (the smoothing's own threshold is exercised in test_problems).
    Connection.objects.bulk_create([
        Connection(name=f"svc-{i:03d}", connection_type="generic_http", config={"base_url": "http://127.0.0.1:9/"},
                   secret_backend="encrypted_sqlite", health_status="degraded", health_consecutive_failures=2)
        for i in range(N)])
    ids = list(Connection.objects.filter(name__startswith="svc-").values_list("pk", flat=True))
    _fail_all(ids, "unhealthy")
    assert Problem.objects.filter(state="open").count() == N
    assert Alert.objects.filter(kind="opened").count() == 2 * N  # the outbox holds every announcement

    outcomes = [sending.alert_send(alert_id=a, now=T0 + timedelta(seconds=10))
                for a in sending.alerts_due(now=T0 + timedelta(seconds=10), limit=5000)]
    assert sorted(o.result for o in outcomes if o.result != "coalesced") == ["sent", "sent"]
    hooks = [r for r in http_peer.received if r.path == "/hook"]
    assert len(hooks) == 1 and len(mail_peer.messages) == 1
    digest = json.loads(hooks[0].body)
    assert digest["type"] == "problem.digest" and len(digest["data"]["problems"]) == N
    assert "500 problems changed" in mail_peer.messages[0]["Subject"]
    assert Alert.objects.filter(kind="opened", status="coalesced").count() == 2 * N
    assert Alert.objects.filter(kind="digest", status="sent").count() == 2

    _fail_all(ids, "healthy")
    later = T0 + timedelta(minutes=5)
    for alert_id in sending.alerts_due(now=later, limit=5000):
        sending.alert_send(alert_id=alert_id, now=later)
    hooks = [r for r in http_peer.received if r.path == "/hook"]
    assert len(hooks) == 2 and len(mail_peer.messages) == 2
    assert {p["state"] for p in json.loads(hooks[1].body)["data"]["problems"]} == {"resolved"}


def test_a_few_alerts_are_not_digested(http_peer) -> None:
    http_peer.script("/hook", Reply(200))
    receiver = http_connection(http_peer.url("/hook"))
    services.sink_create(name="hook", kind="webhook", connection=receiver.name)
    Connection.objects.bulk_create([
        Connection(name=f"svc-{i}", connection_type="generic_http", config={"base_url": "http://127.0.0.1:9/"},
                   secret_backend="encrypted_sqlite", health_status="degraded", health_consecutive_failures=2)
        for i in range(2)])
    _fail_all(list(Connection.objects.filter(name__startswith="svc-").values_list("pk", flat=True)), "unhealthy")
    now = T0 + timedelta(seconds=10)
    assert [sending.alert_send(alert_id=a, now=now).result for a in sending.alerts_due(now=now)] == ["sent", "sent"]
    assert {json.loads(r.body)["type"] for r in http_peer.received} == {"problem.opened"}

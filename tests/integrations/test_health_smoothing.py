"""Smoothing and recording: sequences, history, audit, Retry-After, and state that lives in the database."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from integrations import health, services
from integrations.health import smooth
from integrations.models import Connection, HealthEvent
from integrations.types import REGISTRY
from integrations.types.probing import DEGRADED, HEALTHY, UNHEALTHY, UNKNOWN, HealthResult
from synthorg.models import AuditEvent
from tests.peers.http_peer import HttpPeer, Reply

ROOT = Path(__file__).resolve().parents[2]


def make(name: str = "api", url: str = "http://127.0.0.1:9/", **extra: Any) -> Connection:
    return services.connection_create(name=name, connection_type="generic_http",
                                      credentials={"base_url": url, "token": "tok-secret-31"}, **extra)


def record(connection: Connection, status: str, detail: str = "", **kwargs: Any) -> health.ProbeOutcome:
    outcome = health.health_record(connection_id=connection.pk, result=HealthResult(status, detail), **kwargs)
    assert outcome is not None
    return outcome


@pytest.mark.parametrize(("results", "expected"), [
    ([HEALTHY], [(HEALTHY, 0)]),
    ([HEALTHY, UNHEALTHY, UNHEALTHY, UNHEALTHY, HEALTHY],
     [(HEALTHY, 0), (DEGRADED, 1), (DEGRADED, 2), (UNHEALTHY, 3), (HEALTHY, 0)]),
    ([DEGRADED, DEGRADED, DEGRADED], [(DEGRADED, 1), (DEGRADED, 2), (UNHEALTHY, 3)]),
    ([UNHEALTHY, UNKNOWN], [(DEGRADED, 1), (UNKNOWN, 0)]),
])
def test_smoothing_sequence_follows_thresholds(results: list[str], expected: list[tuple[str, int]]) -> None:
    status, failures, seen = UNKNOWN, 0, []
    for result in results:
        status, failures = smooth(previous_status=status, failures=failures, result_status=result,
                                  degraded_threshold=1, unhealthy_threshold=3)
        seen.append((status, failures))
    assert seen == expected


def test_degraded_threshold_above_one_keeps_previous_status() -> None:
    assert smooth(previous_status=HEALTHY, failures=0, result_status=UNHEALTHY,
                  degraded_threshold=2, unhealthy_threshold=4) == (HEALTHY, 1)


@pytest.mark.django_db
def test_recorded_sequence_persists_on_the_row_and_audits_changes() -> None:
    connection = make()
    statuses = [record(connection, s, "boom" if s != HEALTHY else "").status
                for s in (HEALTHY, UNHEALTHY, UNHEALTHY, UNHEALTHY, HEALTHY)]
    assert statuses == [HEALTHY, DEGRADED, DEGRADED, UNHEALTHY, HEALTHY]
    connection.refresh_from_db()
    assert (connection.health_status, connection.health_consecutive_failures, connection.health_last_error) == (
        HEALTHY, 0, "")
    assert connection.health_probe_lease_until is None
    assert connection.health_next_check_at == connection.health_checked_at + timedelta(seconds=300)
    events = list(HealthEvent.objects.filter(connection=connection).order_by("id")
                  .values_list("previous_status", "status", "result_status"))
    assert events[1] == (HEALTHY, DEGRADED, UNHEALTHY)
    audits = list(AuditEvent.objects.filter(action="connection.health_changed", target="api")
                  .order_by("id").values_list("details", flat=True))
    # unknown→healthy, healthy→degraded, degraded→unhealthy, unhealthy→healthy: the repeat is no change.
    assert [(a["from"], a["to"]) for a in audits] == [
        (UNKNOWN, HEALTHY), (HEALTHY, DEGRADED), (DEGRADED, UNHEALTHY), (UNHEALTHY, HEALTHY)]


@pytest.mark.django_db
def test_thresholds_keys_change_smoothing(integrations_config: Any) -> None:
    integrations_config({"health": {"degraded_threshold": 2, "unhealthy_threshold": 2}})
    connection = make()
    record(connection, HEALTHY)
    assert record(connection, UNHEALTHY).status == HEALTHY
    assert record(connection, UNHEALTHY).status == UNHEALTHY


@pytest.mark.django_db
def test_history_length_key_bounds_events(integrations_config: Any) -> None:
    integrations_config({"health": {"history_length": 3}})
    connection = make()
    for index in range(6):
        record(connection, HEALTHY, f"check {index}")
    assert list(HealthEvent.objects.filter(connection=connection).order_by("id")
                .values_list("detail", flat=True)) == ["check 3", "check 4", "check 5"]


@pytest.mark.django_db
def test_last_error_kept_for_failures_with_secrets_redacted() -> None:
    connection = make()
    outcome = record(connection, UNHEALTHY, "peer said tok-secret-31 is wrong", secrets=["tok-secret-31"])
    connection.refresh_from_db()
    assert connection.health_last_error == "peer said [redacted] is wrong"
    assert outcome.result.detail == "peer said [redacted] is wrong"
    assert "tok-secret-31" not in str(list(AuditEvent.objects.values_list("reason", "details")))


@pytest.mark.django_db
def test_per_connection_interval_sets_next_check() -> None:
    connection = make(health_check={"interval_seconds": 45})
    outcome = record(connection, HEALTHY)
    connection.refresh_from_db()
    assert connection.health_next_check_at == outcome.result.checked_at + timedelta(seconds=45)


@pytest.mark.django_db
def test_check_interval_key_sets_next_check(integrations_config: Any) -> None:
    integrations_config({"health": {"check_interval_seconds": 600}})
    connection = make()
    outcome = record(connection, HEALTHY)
    connection.refresh_from_db()
    assert connection.health_next_check_at == outcome.result.checked_at + timedelta(seconds=600)


@pytest.mark.django_db
def test_retry_after_delays_next_probe_and_pauses_the_connection() -> None:
    from integrations.ratelimit import RateLimitExceeded, get_rate_limiter

    connection = make()
    now = timezone.now()
    health.health_record(connection_id=connection.pk,
                         result=HealthResult(DEGRADED, "HTTP 429", retry_after=3600, checked_at=now))
    connection.refresh_from_db()
    assert connection.health_next_check_at == now + timedelta(seconds=3600)
    with pytest.raises(RateLimitExceeded):
        get_rate_limiter().acquire(f"connection:{connection.pk}", rpm=1000, wait=False)


@pytest.mark.django_db
def test_real_probe_through_the_service_records_latency() -> None:
    with HttpPeer() as peer:
        peer.script("/", Reply(200), Reply(500))
        connection = make(url=peer.url("/"))
        first = health.connection_probe(connection=connection)
        second = health.connection_probe(connection=connection)
        assert peer.received[0].headers["Authorization"] == "Bearer tok-secret-31"
    assert first is not None and second is not None
    assert (first.status, second.status) == (HEALTHY, DEGRADED)
    assert first.result.latency_ms is not None and first.result.checked_at is not None


@pytest.mark.django_db
def test_timeout_key_bounds_a_hanging_check(integrations_config: Any) -> None:
    integrations_config({"health": {"timeout_seconds": 1}})
    with HttpPeer() as peer:
        connection = make(url=peer.url("/hang/20"))
        outcome = health.connection_probe(connection=connection)
    assert outcome is not None
    assert outcome.result.status == UNHEALTHY
    assert "read timeout" in outcome.result.detail


@pytest.mark.django_db
def test_check_that_raises_is_a_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(context: Any) -> HealthResult:
        raise RuntimeError("bug")

    monkeypatch.setitem(REGISTRY, "generic_http", dataclasses.replace(REGISTRY["generic_http"], probe=broken))
    outcome = health.connection_probe(connection=make())
    assert outcome is not None
    assert outcome.result.status == UNHEALTHY
    assert "RuntimeError" in outcome.result.detail


@pytest.mark.django_db(transaction=True)
def test_failure_count_survives_a_restart() -> None:
    """Two failures recorded here; a fresh process (a restarted worker) records the third."""
    with HttpPeer() as peer:
        connection = make(url=peer.url("/status/500"))
        record(connection, UNHEALTHY)
        record(connection, UNHEALTHY)
        code = (
            "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings'); "
            "from django.conf import settings; import sys; "
            "settings.DATABASES['default']['NAME'] = sys.argv[1]; django.setup(); "
            "from integrations import health; from integrations.models import Connection; "
            "o = health.connection_probe(connection=Connection.objects.get(name='api')); "
            "print(o.status, o.consecutive_failures)"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", code, db_connection.settings_dict["NAME"]], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [UNHEALTHY, "3"]
    connection.refresh_from_db()
    assert (connection.health_status, connection.health_consecutive_failures) == (UNHEALTHY, 3)

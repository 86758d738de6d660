"""The sweep: claiming due connections with a conditional UPDATE, fan-out into chunk tasks, bounded concurrency."""
from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from integrations import prober, services
from integrations.health import connections_probe
from integrations.models import Connection
from integrations.tasks import connections_probe_task, health_sweep_task
from integrations.types import REGISTRY
from integrations.types.probing import HEALTHY, UNHEALTHY, HealthResult
from synthorg import periodic
from tests.peers.http_peer import HttpPeer

pytestmark = pytest.mark.django_db


def make(name: str, url: str = "http://127.0.0.1:9/", **extra: Any) -> Connection:
    return services.connection_create(name=name, connection_type="generic_http",
                                      credentials={"base_url": url}, **extra)


def test_claim_takes_due_and_skips_disabled_future_and_leased() -> None:
    now = timezone.now()
    due = make("due")
    make("disabled", health_check={"enabled": False})
    later = make("later")
    leased = make("leased")
    Connection.objects.filter(pk=later.pk).update(health_next_check_at=now + timedelta(minutes=5))
    Connection.objects.filter(pk=leased.pk).update(health_probe_lease_until=now + timedelta(minutes=5))
    assert prober.connections_claim_due(now=now) == [due.pk]


def test_second_claim_gets_nothing_until_the_lease_expires() -> None:
    now = timezone.now()
    first = make("one")
    assert prober.connections_claim_due(now=now) == [first.pk]
    assert prober.connections_claim_due(now=now) == []
    expired = now + timedelta(seconds=prober.lease_seconds() + 1)
    assert prober.connections_claim_due(now=expired) == [first.pk]  # a dead worker's claim comes back


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_overlap() -> None:
    from django.db import connections

    for index in range(40):
        make(f"c{index}")
    now = timezone.now()
    barrier = threading.Barrier(4)
    claims: list[list[int]] = []

    def sweeper() -> None:
        try:
            barrier.wait(timeout=10)
            claims.append(prober.connections_claim_due(now=now))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = [pk for claim in claims for pk in claim]
    assert len(claims) == 4
    assert sorted(claimed) == sorted(Connection.objects.values_list("pk", flat=True))  # each exactly once


def test_sweep_probes_due_connections_and_sets_next_check() -> None:
    with HttpPeer() as peer:
        ok = make("ok", peer.url("/status/200"))
        bad = make("bad", peer.url("/status/500"))
        result = health_sweep_task.apply().get()
        assert result == {"claimed": 2, "tasks": 1}
    ok.refresh_from_db()
    bad.refresh_from_db()
    assert (ok.health_status, bad.health_status) == (HEALTHY, "degraded")
    assert ok.health_probe_lease_until is None and ok.health_next_check_at > timezone.now()
    # Nothing is due right after: a second sweep claims nothing.
    assert health_sweep_task.apply().get() == {"claimed": 0, "tasks": 0}


def test_chunk_size_key_sets_the_number_of_tasks(integrations_config: Any) -> None:
    integrations_config({"health": {"probe_chunk_size": 2}})
    with HttpPeer() as peer:
        for index in range(5):
            make(f"n{index}", peer.url("/status/200"))
        assert health_sweep_task.apply().get() == {"claimed": 5, "tasks": 3}
        assert len(peer.received) == 5


def test_sweep_skipped_when_integrations_disabled(integrations_config: Any) -> None:
    integrations_config({"enabled": False})
    make("idle")
    assert health_sweep_task.apply().get() == {"skipped": "integrations_disabled"}
    assert Connection.objects.get(name="idle").health_probe_lease_until is None


def _barrier_probe(barrier: threading.Barrier) -> Any:
    def probe(context: Any) -> HealthResult:
        try:
            barrier.wait(timeout=3)
        except threading.BrokenBarrierError:
            return HealthResult(UNHEALTHY, "alone")
        return HealthResult(HEALTHY, "together")
    return probe


@pytest.mark.parametrize(("threads", "expected"), [(1, UNHEALTHY), (3, HEALTHY)])
def test_probe_threads_key_bounds_checks_in_flight(integrations_config: Any, monkeypatch: pytest.MonkeyPatch,
                                                   threads: int, expected: str) -> None:
    # Three checks that each wait for the other two: they meet only if three run at once.
    integrations_config({"health": {"probe_threads": threads}})
    barrier = threading.Barrier(3)
    monkeypatch.setitem(REGISTRY, "generic_http",
                        dataclasses.replace(REGISTRY["generic_http"], probe=_barrier_probe(barrier)))
    ids = [make(f"t{index}").pk for index in range(3)]
    connections_probe_task.apply(args=(ids,)).get()
    assert set(Connection.objects.values_list("health_status", flat=True)) == {
        HEALTHY if expected == HEALTHY else "degraded"}


def test_hanging_check_does_not_block_the_others(integrations_config: Any) -> None:
    integrations_config({"health": {"timeout_seconds": 1}})
    with HttpPeer() as peer:
        hang = make("hang", peer.url("/hang/30"))
        quick = [make(f"q{index}", peer.url("/status/200")) for index in range(3)]
        outcomes = connections_probe([hang.pk, *(c.pk for c in quick)], threads=2)
    by_name = {o.name: o for o in outcomes}
    assert by_name["hang"].result.status == UNHEALTHY
    assert all(by_name[c.name].result.status == HEALTHY for c in quick)


def test_probe_task_for_a_deleted_connection_is_a_no_op() -> None:
    gone = make("gone")
    services.connection_delete(name="gone")
    assert connections_probe_task.apply(args=([gone.pk],)).get() == {"probed": 0}


def test_sweep_registered_with_the_interval_key(integrations_config: Any) -> None:
    integrations_config({"health": {"sweep_interval_seconds": 7}})
    entry = periodic.beat_schedule()["synthorg:health-sweep"]
    assert entry["task"] == "integrations.health_sweep"
    assert entry["schedule"].run_every.total_seconds() == 7

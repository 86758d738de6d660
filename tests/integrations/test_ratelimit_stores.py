"""Every store, one contract: GCRA admission, pauses and concurrency leases (time injected).
The memory store is the webhook receiver's per-process fallback while Redis is down."""
from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from integrations.ratelimit.database_store import DatabaseStore
from integrations.ratelimit.memory_store import MemoryStore
from integrations.ratelimit.redis_store import RedisStore
from integrations.ratelimit.store import RateLimitStore

# Every test may use the database store (the Redis runs simply never touch it).
pytestmark = pytest.mark.django_db


@pytest.fixture(params=["redis", "database", "memory"])
def store(request: pytest.FixtureRequest) -> RateLimitStore:
    if request.param == "redis":
        return RedisStore(request.getfixturevalue("redis_client"))
    if request.param == "memory":
        return MemoryStore()
    return DatabaseStore()


@pytest.fixture
def key() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def t0() -> float:
    return time.time()


def admitted(store: RateLimitStore, key: str, n: int, *, rpm: int, burst: int, now: float) -> int:
    return sum(store.acquire(key, rpm=rpm, burst=burst, now=now).allowed for _ in range(n))


def test_idle_key_admits_burst_plus_one_then_refuses(store: RateLimitStore, key: str, t0: float) -> None:
    assert admitted(store, key, 10, rpm=60, burst=4, now=t0) == 5


def test_zero_burst_admits_one_at_a_time(store: RateLimitStore, key: str, t0: float) -> None:
    assert admitted(store, key, 3, rpm=60, burst=0, now=t0) == 1


def test_refused_request_retry_after_is_time_to_next_slot(store: RateLimitStore, key: str, t0: float) -> None:
    admitted(store, key, 3, rpm=30, burst=2, now=t0)  # interval 2 s: the burst is spent
    decision = store.acquire(key, rpm=30, burst=2, now=t0 + 0.5)
    assert not decision.allowed
    assert decision.retry_after == pytest.approx(1.5, abs=1e-3)


def test_after_one_interval_admits_exactly_one_more(store: RateLimitStore, key: str, t0: float) -> None:
    assert admitted(store, key, 5, rpm=60, burst=2, now=t0) == 3
    assert admitted(store, key, 5, rpm=60, burst=2, now=t0 + 0.999) == 0
    assert admitted(store, key, 5, rpm=60, burst=2, now=t0 + 1.0) == 1
    assert admitted(store, key, 5, rpm=60, burst=2, now=t0 + 1.5) == 0


def test_steady_arrivals_admit_one_per_interval(store: RateLimitStore, key: str, t0: float) -> None:
    # 10 requests per second for 10 s against 120 rpm + burst 3: 4 at once, then 2 per second.
    allowed = sum(store.acquire(key, rpm=120, burst=3, now=t0 + i / 10).allowed for i in range(100))
    assert allowed == 4 + 19


def test_idle_time_refills_at_most_the_burst(store: RateLimitStore, key: str, t0: float) -> None:
    admitted(store, key, 5, rpm=60, burst=2, now=t0)
    assert admitted(store, key, 10, rpm=60, burst=2, now=t0 + 3600) == 3


def test_keys_are_independent(store: RateLimitStore, key: str, t0: float) -> None:
    assert admitted(store, key, 3, rpm=60, burst=0, now=t0) == 1
    assert admitted(store, key + ":other", 3, rpm=60, burst=0, now=t0) == 1


def test_pause_refuses_every_request_until_it_ends(store: RateLimitStore, key: str, t0: float) -> None:
    store.pause(key, 30, now=t0)
    decision = store.acquire(key, rpm=600, burst=10, now=t0 + 10)
    assert not decision.allowed
    assert decision.retry_after == pytest.approx(20, abs=1e-3)
    assert store.acquire(key, rpm=600, burst=10, now=t0 + 30.001).allowed


def test_pause_applies_to_unlimited_key(store: RateLimitStore, key: str, t0: float) -> None:
    assert store.acquire(key, rpm=0, burst=0, now=t0).allowed
    store.pause(key, 5, now=t0)
    assert not store.acquire(key, rpm=0, burst=0, now=t0 + 1).allowed
    assert store.acquire(key, rpm=0, burst=0, now=t0 + 6).allowed


def test_shorter_pause_does_not_cut_a_longer_one(store: RateLimitStore, key: str, t0: float) -> None:
    store.pause(key, 60, now=t0)
    store.pause(key, 1, now=t0)
    assert not store.acquire(key, rpm=60, burst=0, now=t0 + 30).allowed


def test_pause_keeps_the_spent_budget(store: RateLimitStore, key: str, t0: float) -> None:
    assert admitted(store, key, 3, rpm=1, burst=1, now=t0) == 2
    store.pause(key, 1, now=t0)
    assert admitted(store, key, 3, rpm=1, burst=1, now=t0 + 2) == 0


def take(store: RateLimitStore, key: str, token: str, now: float, *, limit: int = 2, lease: float = 60) -> Any:
    return store.lease_acquire(key, max_concurrent=limit, token=token, lease_seconds=lease, now=now)


def test_leases_beyond_max_concurrent_are_refused(store: RateLimitStore, key: str, t0: float) -> None:
    assert take(store, key, "a", t0).allowed
    assert take(store, key, "b", t0 + 1).allowed
    refused = take(store, key, "c", t0 + 2)
    assert not refused.allowed
    # The oldest lease ("a") runs out at t0 + 60.
    assert refused.retry_after == pytest.approx(58, abs=1e-3)


def test_released_lease_frees_its_slot(store: RateLimitStore, key: str, t0: float) -> None:
    take(store, key, "a", t0, limit=1)
    assert not take(store, key, "b", t0, limit=1).allowed
    store.lease_release(key, token="a")
    assert take(store, key, "b", t0, limit=1).allowed


def test_dead_holders_slot_comes_back_after_lease_expiry(store: RateLimitStore, key: str, t0: float) -> None:
    take(store, key, "dead", t0, limit=1, lease=10)
    assert not take(store, key, "b", t0 + 9.9, limit=1, lease=10).allowed
    assert take(store, key, "b", t0 + 10.0, limit=1, lease=10).allowed
    # The dead holder's late release must not free the slot its successor holds.
    store.lease_release(key, token="dead")
    assert not take(store, key, "c", t0 + 10.1, limit=1, lease=10).allowed


def test_renewed_lease_outlives_its_first_expiry(store: RateLimitStore, key: str, t0: float) -> None:
    take(store, key, "a", t0, limit=1, lease=10)
    assert store.lease_renew(key, token="a", lease_seconds=10, now=t0 + 8)
    assert not take(store, key, "b", t0 + 15, limit=1, lease=10).allowed
    assert take(store, key, "b", t0 + 18, limit=1, lease=10).allowed


def test_expired_lease_cannot_be_renewed(store: RateLimitStore, key: str, t0: float) -> None:
    take(store, key, "a", t0, limit=1, lease=10)
    assert not store.lease_renew(key, token="a", lease_seconds=10, now=t0 + 11)
    assert not store.lease_renew(key, token="never-held", lease_seconds=10, now=t0)


def test_leases_and_request_budget_of_one_key_are_separate(store: RateLimitStore, key: str, t0: float) -> None:
    assert take(store, key, "a", t0, limit=1).allowed
    assert store.acquire(key, rpm=60, burst=0, now=t0).allowed


def test_memory_store_flood_of_new_keys_keeps_a_drained_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    # Redis down, the receiver's per-process buckets: a flood of fresh addresses filling the
    # store must not hand a drained bucket (a connection's limit) its whole budget again.
    from integrations.ratelimit import memory_store

    monkeypatch.setattr(memory_store, "MAX_KEYS", 20)
    store = MemoryStore(monotonic=lambda: 1000.0)
    assert store.acquire("webhook-conn:busy", rpm=1, burst=0, now=1000.0).allowed
    assert not store.acquire("webhook-conn:busy", rpm=1, burst=0, now=1000.0).allowed
    for i in range(100):
        store.acquire(f"webhook-ip:10.0.0.{i}", rpm=60, burst=59, now=1000.0)
    assert len(store._tat) <= 20
    assert not store.acquire("webhook-conn:busy", rpm=1, burst=0, now=1000.0).allowed

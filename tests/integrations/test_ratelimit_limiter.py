"""The RateLimiter facade: fail fast or wait (bounded), concurrency slots, pause, store choice."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from integrations.ratelimit import RateLimiter, RateLimitExceeded, get_rate_limiter
from integrations.ratelimit.database_store import DatabaseStore
from integrations.ratelimit.redis_store import RedisStore
from integrations.ratelimit.store import RateLimitStore
from synthorg.errors import RateLimited, ServiceUnavailable

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["redis", "database"])
def store(request: pytest.FixtureRequest) -> RateLimitStore:
    if request.param == "redis":
        return RedisStore(request.getfixturevalue("redis_client"))
    return DatabaseStore()


@pytest.fixture
def key() -> str:
    return f"test:{uuid.uuid4().hex}"


class RecordingSleep:
    """Records sleeps instead of sleeping, for the paths that must give up without waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_fail_fast_refusal_raises_with_retry_after(store: RateLimitStore, key: str) -> None:
    limiter = RateLimiter(store)
    limiter.acquire(key, rpm=6, burst=0, wait=False)
    with pytest.raises(RateLimitExceeded) as caught:
        limiter.acquire(key, rpm=6, burst=0, wait=False)
    assert isinstance(caught.value, RateLimited)
    assert 9 < caught.value.retry_after <= 10
    assert caught.value.wait == caught.value.retry_after


def test_wait_longer_than_max_wait_raises_without_sleeping(store: RateLimitStore, key: str) -> None:
    sleep = RecordingSleep()
    limiter = RateLimiter(store, sleep=sleep)
    limiter.acquire(key, rpm=6, burst=0)
    with pytest.raises(RateLimitExceeded) as caught:
        limiter.acquire(key, rpm=6, burst=0, wait=True, max_wait=2)
    assert caught.value.retry_after > 2
    assert sleep.calls == []


def test_config_max_wait_is_the_default_bound(store: RateLimitStore, key: str) -> None:
    sleep = RecordingSleep()
    limiter = RateLimiter(store, max_wait_seconds=5, sleep=sleep)
    limiter.acquire(key, rpm=6, burst=0)
    with pytest.raises(RateLimitExceeded):
        limiter.acquire(key, rpm=6, burst=0)  # the next slot is 10 s away, the bound 5 s
    assert sleep.calls == []


def test_short_wait_within_bound_is_admitted(store: RateLimitStore, key: str) -> None:
    limiter = RateLimiter(store)
    limiter.acquire(key, rpm=1200, burst=0)  # interval 50 ms
    limiter.acquire(key, rpm=1200, burst=0, wait=True, max_wait=2)
    with pytest.raises(RateLimitExceeded):
        limiter.acquire(key, rpm=1200, burst=0, wait=False)


def test_unlimited_key_never_refuses(store: RateLimitStore, key: str) -> None:
    limiter = RateLimiter(store)
    for _ in range(50):
        limiter.acquire(key, rpm=0, wait=False)


def test_pause_refuses_every_caller(store: RateLimitStore, key: str) -> None:
    RateLimiter(store).pause(key, 30)
    other = RateLimiter(store)  # another caller sharing only the store's state
    with pytest.raises(RateLimitExceeded) as caught:
        other.acquire(key, rpm=600, burst=100, max_wait=5)
    assert 29 < caught.value.retry_after <= 30
    with pytest.raises(RateLimitExceeded):
        other.acquire(key, rpm=0, wait=False)


def test_concurrency_slot_is_released_on_exit(store: RateLimitStore, key: str) -> None:
    limiter = RateLimiter(store)
    with limiter.concurrency(key, max_concurrent=1, wait=False):
        with pytest.raises(RateLimitExceeded) as caught:
            with limiter.concurrency(key, max_concurrent=1, wait=False):
                pass
        assert caught.value.retry_after > 0
    with limiter.concurrency(key, max_concurrent=1, wait=False):
        pass


def test_concurrency_slot_is_released_when_block_raises(store: RateLimitStore, key: str) -> None:
    limiter = RateLimiter(store)
    with pytest.raises(ValueError), limiter.concurrency(key, max_concurrent=1, wait=False):
        raise ValueError("boom")
    with limiter.concurrency(key, max_concurrent=1, wait=False):
        pass


def test_concurrency_waiter_gives_up_at_max_wait(store: RateLimitStore, key: str) -> None:
    limiter = RateLimiter(store)
    with limiter.concurrency(key, max_concurrent=1, wait=False):
        with pytest.raises(RateLimitExceeded):
            with limiter.concurrency(key, max_concurrent=1, wait=True, max_wait=0.2):
                pass


def test_lease_renew_keeps_the_slot(store: RateLimitStore, key: str) -> None:
    limiter = RateLimiter(store)
    with limiter.concurrency(key, max_concurrent=1, lease_seconds=30) as lease:
        assert lease.renew()
        with pytest.raises(RateLimitExceeded):
            with limiter.concurrency(key, max_concurrent=1, wait=False):
                pass


def test_unlimited_concurrency_hands_out_noop_leases(store: RateLimitStore, key: str) -> None:
    limiter = RateLimiter(store)
    with limiter.concurrency(key, max_concurrent=0) as first, limiter.concurrency(key, max_concurrent=0) as second:
        assert first.renew() and second.renew()


def test_unreachable_redis_fails_closed(key: str) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with pytest.raises(ServiceUnavailable):
        RateLimiter(RedisStore(dead)).acquire(key, rpm=60)


def test_auto_backend_without_redis_uses_database(settings: Any, integrations_config: Any) -> None:
    settings.REDIS_URL = None
    integrations_config({"ratelimit": {"backend": "auto", "max_wait_seconds": 7, "lease_seconds": 42}})
    limiter = get_rate_limiter()
    assert isinstance(limiter.store, DatabaseStore)
    assert (limiter.max_wait_seconds, limiter.lease_seconds) == (7, 42)


def test_auto_backend_with_redis_uses_redis(redis_client: Any, integrations_config: Any) -> None:
    integrations_config({"ratelimit": {"backend": "auto"}})
    assert isinstance(get_rate_limiter().store, RedisStore)


def test_database_backend_is_honoured_with_redis_set(redis_client: Any, integrations_config: Any) -> None:
    integrations_config({"ratelimit": {"backend": "database"}})
    assert isinstance(get_rate_limiter().store, DatabaseStore)


def test_redis_backend_without_redis_url_is_a_configuration_error(settings: Any, integrations_config: Any) -> None:
    settings.REDIS_URL = None
    integrations_config({"ratelimit": {"backend": "redis"}})
    with pytest.raises(ImproperlyConfigured):
        get_rate_limiter()

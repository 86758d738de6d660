"""Child-process bodies for test_ratelimit_concurrency (no tests here).

They live in their own module with no Django imports at the top, because a spawned child
imports this module before it has set Django up.
"""
from __future__ import annotations

import os
import time
from typing import Any


def setup_django(db_name: str | None) -> None:
    """Settings as in the parent (env is inherited), pointed at the parent's test database."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    if db_name:
        settings.DATABASES["default"]["NAME"] = db_name
    django.setup()


def build_store(backend: str) -> Any:
    if backend == "redis":
        from integrations.ratelimit.redis_store import RedisStore
        from synthorg.redis_client import get_redis

        return RedisStore(get_redis())
    from integrations.ratelimit.database_store import DatabaseStore

    return DatabaseStore()


def close_connections() -> None:
    from django.db import connections

    connections.close_all()


def hammer_gcra(backend: str, db_name: str | None, key: str, rpm: int, burst: int, attempts: int,
                barrier: Any, results: Any) -> None:
    setup_django(db_name)
    store = build_store(backend)
    store.acquire(key + ":warm-up", rpm=rpm, burst=burst)  # open the connection before the race
    barrier.wait(timeout=60)
    admitted = sum(store.acquire(key, rpm=rpm, burst=burst).allowed for _ in range(attempts))
    close_connections()
    results.put(admitted)


def hammer_leases(backend: str, db_name: str | None, key: str, max_concurrent: int, rounds: int,
                  barrier: Any, holders: Any, peak: Any, results: Any) -> None:
    setup_django(db_name)
    from integrations.ratelimit.limiter import RateLimiter

    limiter = RateLimiter(build_store(backend), max_wait_seconds=30, lease_seconds=30)
    barrier.wait(timeout=60)
    done = 0
    for _ in range(rounds):
        with limiter.concurrency(key, max_concurrent=max_concurrent):
            # Counted only while the slot is surely held: after acquire, before release.
            with holders.get_lock():
                holders.value += 1
                peak.value = max(peak.value, holders.value)
            time.sleep(0.01)
            with holders.get_lock():
                holders.value -= 1
        done += 1
    close_connections()
    results.put(done)


def hold_and_die(backend: str, db_name: str | None, key: str, lease_seconds: float, acquired: Any) -> None:
    setup_django(db_name)
    from integrations.ratelimit.limiter import RateLimiter

    limiter = RateLimiter(build_store(backend), lease_seconds=lease_seconds)
    # Keep a reference: a collected context manager would close its generator and release.
    held = limiter.concurrency(key, max_concurrent=1)
    held.__enter__()
    close_connections()
    acquired.set()
    # Die holding the slot: no release, no cleanup, as a killed worker would.
    os._exit(0)

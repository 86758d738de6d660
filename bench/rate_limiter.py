"""Rate limiter benchmark: acquire overhead and admission accuracy, Redis and database stores.

    DATABASE_URL=postgres://... REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/rate_limiter.py

Runs with the test settings (its own Redis key prefix, removed at the end) in a throwaway
database (``test_<name>`` on PostgreSQL, a temporary file on SQLite) created and dropped here.
Prints figures only:

* acquire overhead p50/p99 per store, beside a baseline round trip (Redis PING, SELECT 1);
* admitted / allowed under 4 competing processes over ``--seconds`` (goal: within 1 %),
  where allowed = burst + 1 + (last admission - first admission) / interval.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def setup_django(db_name: str | None = None) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    if db_name:
        settings.DATABASES["default"]["NAME"] = db_name
    django.setup()


def make_store(backend: str) -> Any:
    if backend == "redis":
        from integrations.ratelimit.redis_store import RedisStore
        from synthorg.redis_client import get_redis

        return RedisStore(get_redis())
    from integrations.ratelimit.database_store import DatabaseStore

    return DatabaseStore()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(call: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def competitor(backend: str, db_name: str | None, key: str, rpm: int, burst: int, seconds: float,
               barrier: Any, results: Any) -> None:
    setup_django(db_name)
    from django.db import connections

    from integrations.ratelimit.errors import RateLimitExceeded
    from integrations.ratelimit.limiter import RateLimiter

    limiter = RateLimiter(make_store(backend), max_wait_seconds=5)
    barrier.wait(timeout=120)
    stop = time.time() + seconds
    stamps: list[float] = []
    while time.time() < stop:
        try:
            limiter.acquire(key, rpm=rpm, burst=burst, wait=True, max_wait=1)
        except RateLimitExceeded:
            continue
        stamps.append(time.time())
    connections.close_all()
    results.put(stamps)


def accuracy(backend: str, db_name: str | None, *, rpm: int, burst: int, seconds: float, procs: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    key = f"bench:accuracy:{uuid.uuid4().hex}"
    workers = [ctx.Process(target=competitor, args=(backend, db_name, key, rpm, burst, seconds, barrier, results))
               for _ in range(procs)]
    for worker in workers:
        worker.start()
    stamps = sorted(stamp for _ in workers for stamp in results.get(timeout=seconds + 180))
    for worker in workers:
        worker.join(timeout=30)
    interval = 60.0 / rpm
    allowed = burst + 1 + (stamps[-1] - stamps[0]) / interval
    print(f"  {backend:<9} {procs} processes, {seconds:.0f} s, rpm={rpm} burst={burst}: admitted {len(stamps)}, "
          f"allowed {allowed:.1f}, ratio {len(stamps) / allowed:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rpm", type=int, default=1200)
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()

    setup_django()
    from django.conf import settings
    from django.db import connection

    if connection.vendor == "sqlite":
        # A file, not memory: the competing processes must share it.
        connection.settings_dict["TEST"]["NAME"] = str(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    old_name = connection.settings_dict["NAME"]
    db_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    backends = (["redis"] if settings.REDIS_URL else []) + ["database"]
    print(f"database: {connection.vendor}; Redis: {'yes' if settings.REDIS_URL else 'not configured'}")
    try:
        print(f"acquire overhead, {args.samples} calls each (ms):")
        for backend in backends:
            store = make_store(backend)
            if backend == "redis":
                baseline = timed(store.client.ping, args.samples)
                label = "Redis PING"
            else:
                def select_one() -> None:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT 1")
                baseline = timed(select_one, args.samples)
                label = "SELECT 1"
            key = f"bench:overhead:{uuid.uuid4().hex}"
            gcra = timed(lambda: store.acquire(key, rpm=10**9, burst=0), args.samples)  # noqa: B023
            lease_key = f"bench:lease:{uuid.uuid4().hex}"

            def lease_cycle() -> None:
                token = uuid.uuid4().hex
                store.lease_acquire(lease_key, max_concurrent=10, token=token, lease_seconds=60)  # noqa: B023
                store.lease_release(lease_key, token=token)  # noqa: B023

            leases = timed(lease_cycle, args.samples // 2)
            base50, base99 = percentiles(baseline)
            for name, samples in (("acquire (GCRA)", gcra), ("lease acquire+release", leases)):
                p50, p99 = percentiles(samples)
                print(f"  {backend:<9} {name:<22} p50 {p50:7.3f}  p99 {p99:7.3f}   "
                      f"({p50 / base50:.1f}x / {p99 / base99:.1f}x {label} p50 {base50:.3f} p99 {base99:.3f})")
        print("admitted vs allowed under competition:")
        for backend in backends:
            accuracy(backend, db_name if backend == "database" else None, rpm=args.rpm, burst=args.burst,
                     seconds=args.seconds, procs=args.processes)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if settings.REDIS_URL:
            from synthorg.redis_client import get_redis

            client = get_redis()
            keys = list(client.scan_iter(match=settings.REDIS_KEY_PREFIX + "*", count=1000))
            if keys:
                client.delete(*keys)


if __name__ == "__main__":
    main()

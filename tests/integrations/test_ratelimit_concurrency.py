"""Many processes (and threads), one limit: exactly the configured count, never more slots.

Each child is spawned (no inherited sockets) and opens its own Redis and database
connections. The database-store process tests need PostgreSQL: SQLite's test database lives
in the memory of this process. Threads cover the database store on SQLite.
"""
from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, connections

from integrations.models import ConcurrencyLease, RateLimitBucket
from integrations.ratelimit import RateLimiter, RateLimitExceeded
from integrations.ratelimit.database_store import DatabaseStore
from integrations.ratelimit.redis_store import RedisStore
from tests.integrations import test_ratelimit_workers as workers

PROCESSES = 4
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=["redis", "database"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """(backend, test database name for the children)."""
    if request.param == "redis":
        request.getfixturevalue("redis_client")
        return "redis", None
    request.getfixturevalue("transactional_db")
    if connection.vendor != "postgresql":
        # The test database is a file (tests/settings.py), but four processes racing on it
        # mostly wait for SQLite's single writer until their time runs out: the race is a
        # PostgreSQL question; the threaded tests cover SQLite's serialization.
        pytest.skip("the cross-process race needs PostgreSQL (SQLite has one writer at a time)")
    return "database", connection.settings_dict["NAME"]


def run_children(target: Any, args_for: Any, *, count: int = PROCESSES, timeout: float = 120) -> list[Any]:
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(*args_for(i), results)) for i in range(count)]
    for proc in procs:
        proc.start()
    try:
        collected = [results.get(timeout=timeout) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    return collected


def test_processes_hammering_one_limit_admit_exactly_the_budget(backend: tuple[str, str | None]) -> None:
    name, db_name = backend
    key = f"test:race:{uuid.uuid4().hex}"
    barrier = SPAWN.Barrier(PROCESSES)
    # rpm=1: the next slot is a minute away, so within the test exactly burst + 1 get in.
    admitted = run_children(workers.hammer_gcra, lambda i: (name, db_name, key, 1, 24, 40, barrier))
    assert sum(admitted) == 25
    assert len(admitted) == PROCESSES


def test_processes_never_exceed_max_concurrent(backend: tuple[str, str | None]) -> None:
    name, db_name = backend
    key = f"test:slots:{uuid.uuid4().hex}"
    barrier = SPAWN.Barrier(PROCESSES)
    holders = SPAWN.Value("i", 0)
    peak = SPAWN.Value("i", 0)
    done = run_children(workers.hammer_leases,
                        lambda i: (name, db_name, key, 2, 15, barrier, holders, peak))
    assert done == [15] * PROCESSES
    assert peak.value == 2  # reached (so the race happened) and never exceeded


def test_dead_holders_slot_comes_back_after_lease_expiry(backend: tuple[str, str | None]) -> None:
    name, db_name = backend
    key = f"test:dead:{uuid.uuid4().hex}"
    acquired = SPAWN.Event()
    child = SPAWN.Process(target=workers.hold_and_die, args=(name, db_name, key, 2.0, acquired))
    child.start()
    store = RedisStore(workers.build_store("redis").client) if name == "redis" else DatabaseStore()
    limiter = RateLimiter(store)
    try:
        assert acquired.wait(timeout=60)
        with pytest.raises(RateLimitExceeded):
            with limiter.concurrency(key, max_concurrent=1, wait=False):
                pass
        child.join(timeout=30)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
    # The dead child's two-second lease runs out; a bounded waiter then gets the slot.
    with limiter.concurrency(key, max_concurrent=1, wait=True, max_wait=5):
        pass


@pytest.fixture
def thread_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[DatabaseStore]:
    """The database store for the thread tests.

    PostgreSQL: the test database. SQLite: a file database configured as in production (WAL,
    IMMEDIATE, busy timeout), because the in-memory test database shares one cache between
    threads and answers "table is locked" at once instead of waiting like a real SQLite file.
    """
    if connection.vendor == "postgresql":
        request.getfixturevalue("transactional_db")
        yield DatabaseStore()
        return
    # A database of this test's own, outside the test database the blocker guards.
    blocker = request.getfixturevalue("django_db_blocker")
    alias = f"ratelimit_{uuid.uuid4().hex[:8]}"
    connections.settings[alias] = {**connection.settings_dict, "NAME": str(tmp_path / "ratelimit.sqlite3")}
    with blocker.unblock():
        try:
            with connections[alias].schema_editor() as editor:
                editor.create_model(RateLimitBucket)
                editor.create_model(ConcurrencyLease)
            yield DatabaseStore(using=alias)
        finally:
            connections[alias].close()
            del connections[alias]
            del connections.settings[alias]


def test_threads_on_database_store_admit_exactly_the_budget(thread_store: DatabaseStore) -> None:
    key = f"test:threads:{uuid.uuid4().hex}"
    store = thread_store
    threads_count = 4
    barrier = threading.Barrier(threads_count)
    counts: list[int] = []
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            barrier.wait(timeout=30)
            counts.append(sum(store.acquire(key, rpm=1, burst=14).allowed for _ in range(30)))
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=hammer) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sum(counts) == 15


def test_threads_on_database_store_never_exceed_max_concurrent(thread_store: DatabaseStore) -> None:
    key = f"test:thread-slots:{uuid.uuid4().hex}"
    limiter = RateLimiter(thread_store, max_wait_seconds=30)
    lock = threading.Lock()
    state = {"holders": 0, "peak": 0}
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(8):
                with limiter.concurrency(key, max_concurrent=2):
                    with lock:
                        state["holders"] += 1
                        state["peak"] = max(state["peak"], state["holders"])
                    time.sleep(0.01)
                    with lock:
                        state["holders"] -= 1
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert state["peak"] == 2

"""`RateLimiter`: waiting (bounded) or failing fast on top of a store, and `get_rate_limiter()`.

The store decides every admission atomically; this layer only loops: ask, and when refused
either raise `RateLimitExceeded` (the wait would exceed ``max_wait``) or sleep for the store's
``retry_after`` and ask again. A sleeper can lose the next slot to another process, so every
caller's total wait is bounded by its own deadline, never by the number of tries.
"""
from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from django.core.exceptions import ImproperlyConfigured

from integrations.ratelimit.errors import RateLimiterUnavailable, RateLimitExceeded
from integrations.ratelimit.store import RateLimitStore
from synthorg.metrics import RATE_LIMIT_DECISIONS

logger = logging.getLogger(__name__)

# Polling bounds while waiting for a concurrency slot: a release is not announced, so a
# waiter re-asks at least this often instead of sleeping until the oldest lease expires.
LEASE_POLL_MIN_SECONDS = 0.01
LEASE_POLL_MAX_SECONDS = 0.25
# What a refused concurrency caller is told to wait (a slot may free up at any moment).
LEASE_RETRY_AFTER_SECONDS = 1.0

T = TypeVar("T")


@dataclass
class Lease:
    """A held concurrency slot; `renew()` before ``lease_seconds`` runs out on long calls."""

    key: str
    token: str
    lease_seconds: float
    _store: RateLimitStore | None = field(default=None, repr=False)
    released: bool = False

    def renew(self, seconds: float | None = None) -> bool:
        """Extend the lease; False when it had already expired (its slot may be someone else's)."""
        if self._store is None:
            return True
        return self._store.lease_renew(self.key, token=self.token, lease_seconds=seconds or self.lease_seconds)

    def release(self) -> None:
        if self._store is not None and not self.released:
            self._store.lease_release(self.key, token=self.token)
        self.released = True


class RateLimiter:
    def __init__(self, store: RateLimitStore, *, max_wait_seconds: float = 10.0, lease_seconds: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.max_wait_seconds = max_wait_seconds
        self.lease_seconds = lease_seconds
        self._sleep = sleep
        self._monotonic = monotonic

    def __repr__(self) -> str:
        return f"RateLimiter(store={self.store.name})"

    # --- public API -------------------------------------------------------------------

    def acquire(self, key: str, *, rpm: int, burst: int = 0, wait: bool = True,
                max_wait: float | None = None) -> None:
        """Take one request from `key`'s budget of `rpm` per minute plus `burst` at once.

        ``rpm=0`` means unlimited, but a `pause` of the key is honoured all the same.
        Raises `RateLimitExceeded` when refused and ``wait`` is false, or when admission
        would come later than ``max_wait`` seconds from now (default: the config's
        ``max_wait_seconds``).
        """
        self._acquire_until(key, rpm=rpm, burst=burst, deadline=self._deadline(wait, max_wait))

    @contextmanager
    def concurrency(self, key: str, *, max_concurrent: int, wait: bool = True,
                    max_wait: float | None = None, lease_seconds: float | None = None) -> Iterator[Lease]:
        """Hold one of `max_concurrent` slots of `key` for the ``with`` block (0 = unlimited).

        The slot is released on exit, and comes back by itself ``lease_seconds`` after the
        last renewal if the holder dies. Raises `RateLimitExceeded` like `acquire`.
        """
        lease = self._lease_until(key, max_concurrent=max_concurrent, deadline=self._deadline(wait, max_wait),
                                  lease_seconds=lease_seconds or self.lease_seconds)
        try:
            yield lease
        finally:
            try:
                lease.release()
            except redis.RedisError:
                # The lease expires on its own; the block's own outcome matters more.
                logger.warning("Could not release concurrency lease on %s; it will expire", key, exc_info=True)

    def pause(self, key: str, seconds: float) -> None:
        """Refuse `key` to every caller, in every process, for `seconds` (a remote Retry-After)."""
        if seconds > 0:
            logger.info("Pausing rate-limit key %s for %.1f s", key, seconds)
            self._call(self.store.pause, key, seconds)

    # --- the loops ----------------------------------------------------------------------

    def _deadline(self, wait: bool, max_wait: float | None) -> float | None:
        """Monotonic time after which we stop waiting; None = fail fast."""
        if not wait:
            return None
        budget = self.max_wait_seconds if max_wait is None else max_wait
        return self._monotonic() + max(0.0, budget)

    def _acquire_until(self, key: str, *, rpm: int, burst: int, deadline: float | None) -> None:
        while True:
            decision = self._call(self.store.acquire, key, rpm=rpm, burst=burst)
            # Metrics by key family only (the part before the first colon: never a name).
            RATE_LIMIT_DECISIONS.labels(key.split(":", 1)[0], "admitted" if decision.allowed else "refused").inc()
            if decision.allowed:
                return
            # GCRA knows when the next slot opens: a wait past the deadline fails at once
            # instead of sleeping through it. Jitter spreads processes refused together.
            self._wait_or_raise(key, deadline, retry_after=decision.retry_after,
                                delay=decision.retry_after + random.uniform(0, 0.01), fail_early=True)

    def _lease_until(self, key: str, *, max_concurrent: int, deadline: float | None, lease_seconds: float) -> Lease:
        token = secrets.token_hex(16)
        if max_concurrent <= 0:
            return Lease(key, token, lease_seconds)
        poll = LEASE_POLL_MIN_SECONDS
        while True:
            decision = self._call(self.store.lease_acquire, key, max_concurrent=max_concurrent, token=token,
                                  lease_seconds=lease_seconds)
            if decision.allowed:
                return Lease(key, token, lease_seconds, _store=self.store)
            # The oldest lease's expiry is only the worst case: any holder may release
            # sooner, so poll until the deadline and report a short retry_after.
            self._wait_or_raise(key, deadline, retry_after=min(decision.retry_after, LEASE_RETRY_AFTER_SECONDS),
                                delay=min(decision.retry_after, poll), fail_early=False)
            poll = min(poll * 2, LEASE_POLL_MAX_SECONDS)

    def _wait_or_raise(self, key: str, deadline: float | None, *, retry_after: float, delay: float,
                       fail_early: bool) -> None:
        if deadline is None:
            raise RateLimitExceeded(retry_after, key=key)
        remaining = deadline - self._monotonic()
        if remaining <= 0 or (fail_early and retry_after > remaining):
            raise RateLimitExceeded(retry_after, key=key)
        self._sleep(max(0.0, min(delay, remaining)))

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            # Fail closed: a limiter that cannot see its state must not let calls through.
            logger.warning("Rate-limit store %s is unavailable: %s", self.store.name, exc)
            raise RateLimiterUnavailable() from exc


def _build_store() -> RateLimitStore:
    from django.conf import settings

    from synthorg.config import get_config
    from synthorg.redis_client import get_redis

    backend = get_config().integrations.ratelimit.backend
    if backend == "auto":
        backend = "redis" if settings.REDIS_URL else "database"
    if backend == "redis":
        client = get_redis()
        if client is None:
            raise ImproperlyConfigured("integrations.ratelimit.backend is 'redis' but REDIS_URL is not set")
        return _redis_store(client)
    from integrations.ratelimit.database_store import DatabaseStore

    return DatabaseStore()


_store_cache: dict[int, RateLimitStore] = {}


def _redis_store(client: redis.Redis) -> RateLimitStore:
    # One RedisStore per client keeps the registered scripts' SHAs (no re-hashing per call).
    store = _store_cache.get(id(client))
    if store is None or getattr(store, "client", None) is not client:
        from integrations.ratelimit.redis_store import RedisStore

        store = RedisStore(client)
        _store_cache.clear()
        _store_cache[id(client)] = store
    return store


def get_rate_limiter() -> RateLimiter:
    """The limiter configured by ``integrations.ratelimit`` (backend, max wait, lease length)."""
    from synthorg.config import get_config

    config = get_config().integrations.ratelimit
    return RateLimiter(_build_store(), max_wait_seconds=config.max_wait_seconds,
                       lease_seconds=config.lease_seconds)

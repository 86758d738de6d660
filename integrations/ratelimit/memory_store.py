"""A store in this process's memory: the webhook receiver's fallback while Redis is down.

The shared stores (`RedisStore`, `DatabaseStore`) are the rule; this one is never configured
as a backend. It exists for one case (issue 13): when the shared limiter is unreachable, the
receiver keeps admitting signed deliveries under per-process buckets (each a share of the
shared budget) instead of refusing them all with 503. Same GCRA as the shared stores, on
``time.monotonic()``, under one lock; idle (then the least drained) keys are dropped so a flood of addresses cannot
grow it without bound.
"""
from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable

from integrations.ratelimit.store import ALLOWED, Decision, gcra_parameters

# Keys kept at most; past it, keys idle longer than their burst window are dropped first.
MAX_KEYS = 10_000


class MemoryStore:
    name = "memory"

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}
        self._paused: dict[str, float] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._monotonic = monotonic

    def _now(self, now: float | None) -> float:
        return self._monotonic() if now is None else now

    def acquire(self, key: str, *, rpm: int, burst: int, now: float | None = None) -> Decision:
        with self._lock:
            now = self._now(now)
            paused_until = self._paused.get(key, 0.0)
            if paused_until > now:
                return Decision(False, paused_until - now)
            if rpm <= 0:
                return ALLOWED
            interval, limit = gcra_parameters(rpm, burst)
            new_tat = max(self._tat.get(key, 0.0), now) + interval
            allow_at = new_tat - limit
            if allow_at > now:
                return Decision(False, allow_at - now)
            if key not in self._tat and len(self._tat) >= MAX_KEYS:
                self._forget_idle(now)
            self._tat[key] = new_tat
            return ALLOWED

    def refund(self, key: str, *, rpm: int) -> None:
        """Hand back one request taken from ``key`` (the receiver's unused reservation)."""
        if rpm <= 0:
            return
        with self._lock:
            if key in self._tat:
                self._tat[key] -= 60.0 / rpm

    def pause(self, key: str, seconds: float, *, now: float | None = None) -> None:
        if seconds <= 0:
            return
        with self._lock:
            until = self._now(now) + seconds
            self._paused[key] = max(self._paused.get(key, 0.0), until)

    def lease_acquire(self, key: str, *, max_concurrent: int, token: str, lease_seconds: float,
                      now: float | None = None) -> Decision:
        with self._lock:
            now = self._now(now)
            leases = self._leases.setdefault(key, {})
            for expired in [t for t, expires in leases.items() if expires <= now]:
                del leases[expired]
            if len(leases) < max_concurrent:
                leases[token] = now + lease_seconds
                return ALLOWED
            return Decision(False, max(0.0, min(leases.values()) - now))

    def lease_renew(self, key: str, *, token: str, lease_seconds: float, now: float | None = None) -> bool:
        with self._lock:
            now = self._now(now)
            leases = self._leases.get(key, {})
            if leases.get(token, 0.0) <= now:
                return False
            leases[token] = now + lease_seconds
            return True

    def lease_release(self, key: str, *, token: str) -> None:
        with self._lock:
            self._leases.get(key, {}).pop(token, None)

    def _forget_idle(self, now: float) -> None:
        # A key whose theoretical arrival time has passed holds its whole budget again:
        # forgetting it changes nothing. When too few have, the keys nearest to a full budget
        # go, never everything: wiping all would refill a drained connection bucket for anyone
        # who floods fresh addresses. A tenth at once, so a flood costs one scan per
        # MAX_KEYS // 10 new keys under the lock, not one per request.
        batch = max(1, MAX_KEYS // 10)
        idle = [key for key, tat in self._tat.items() if tat <= now]
        if len(idle) < batch:
            idle = heapq.nsmallest(batch, self._tat, key=self._tat.__getitem__)
        for key in idle:
            del self._tat[key]

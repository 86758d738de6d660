"""What a rate-limit store does; `RedisStore` and `DatabaseStore` implement it.

All times are epoch seconds. ``now`` overrides the store's clock (tests, benchmarks); without
it the Redis store uses the Redis server's clock and the database store this machine's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Seconds until the key is expected to admit again (0 when allowed).
    retry_after: float = 0.0


ALLOWED = Decision(True, 0.0)


def gcra_parameters(rpm: int, burst: int) -> tuple[float, float]:
    """(emission interval, limit) for GCRA.

    A request is admitted when ``max(tat, now) + interval - limit <= now``; with
    ``limit = interval * (burst + 1)`` an idle key admits ``burst + 1`` requests at once,
    then one per ``interval = 60 / rpm`` seconds.
    """
    if rpm <= 0:
        raise ValueError("rpm must be positive (0 means unlimited and never reaches a store)")
    if burst < 0:
        raise ValueError("burst must be >= 0")
    interval = 60.0 / rpm
    return interval, interval * (burst + 1)


class RateLimitStore(Protocol):
    name: str

    def acquire(self, key: str, *, rpm: int, burst: int, now: float | None = None) -> Decision:
        """Take one request from `key`'s GCRA budget; ``rpm=0`` only checks the pause."""

    def pause(self, key: str, seconds: float, *, now: float | None = None) -> None:
        """Refuse `key` to every caller for `seconds` (never shortens an existing pause)."""

    def lease_acquire(self, key: str, *, max_concurrent: int, token: str, lease_seconds: float,
                      now: float | None = None) -> Decision:
        """Hold one of `max_concurrent` slots of `key` under `token` until it expires or is released."""

    def lease_renew(self, key: str, *, token: str, lease_seconds: float, now: float | None = None) -> bool:
        """Push the lease's expiry to now + lease_seconds; False when it had already expired."""

    def lease_release(self, key: str, *, token: str) -> None:
        """Free the slot (no-op when the lease has expired or was released)."""

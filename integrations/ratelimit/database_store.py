"""The database store (PostgreSQL or SQLite) for runs without Redis.

GCRA is one conditional UPDATE on the key's `RateLimitBucket` row::

    UPDATE ... SET tat = GREATEST(tat, now) + interval
    WHERE key = %s AND paused_until <= now AND tat <= now + limit - interval

The WHERE clause is GCRA's admission test (``max(tat, now) + interval - limit <= now``,
simplified because ``limit >= interval``). The database makes it atomic: PostgreSQL re-checks
the WHERE clause on the newest row version after waiting for a concurrent writer's row lock
(READ COMMITTED), and SQLite runs one writer at a time. One row updated means admitted.

Leases are `ConcurrencyLease` rows. Taking one locks the key's bucket row first
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serializes
writers), so "delete the expired, count the live, insert if below the limit" cannot interleave
with another taker of the same key.

Clock: this machine's ``time.time()``; unlike Redis there is no shared server clock here, so
machines sharing one database need NTP (a skew of d seconds shifts a key's timeline by d).
Call the store outside the caller's transactions: inside one, PostgreSQL keeps the bucket row
locked until that transaction ends and every other caller of the key waits for it.
"""
from __future__ import annotations

import time

from django.db import IntegrityError, transaction
from django.db.models import F, FloatField, Min, Value
from django.db.models.functions import Greatest

from integrations.ratelimit.store import ALLOWED, Decision, gcra_parameters


def _clock(now: float | None) -> float:
    return time.time() if now is None else now


class DatabaseStore:
    name = "database"

    def __init__(self, using: str = "default") -> None:
        self.using = using

    # --- GCRA -------------------------------------------------------------------------

    def _ensure_bucket(self, key: str) -> None:
        """Create the key's row if missing; two first callers racing both end up with one row."""
        from integrations.models import RateLimitBucket

        try:
            # get_or_create wraps its INSERT in a savepoint and re-reads on IntegrityError.
            RateLimitBucket.objects.using(self.using).get_or_create(key=key)
        except IntegrityError:
            # Only when the winner's row is not yet visible to us; it will be on the retry.
            pass

    def acquire(self, key: str, *, rpm: int, burst: int, now: float | None = None) -> Decision:
        from integrations.models import RateLimitBucket

        now = _clock(now)
        buckets = RateLimitBucket.objects.using(self.using)
        if rpm <= 0:
            paused_until = buckets.filter(key=key).values_list("paused_until", flat=True).first()
            if paused_until is not None and paused_until > now:
                return Decision(False, paused_until - now)
            return ALLOWED
        interval, limit = gcra_parameters(rpm, burst)
        for _attempt in range(2):
            updated = buckets.filter(key=key, paused_until__lte=now, tat__lte=now + limit - interval).update(
                tat=Greatest(F("tat"), Value(now, output_field=FloatField())) + interval,
            )
            if updated:
                return ALLOWED
            state = buckets.filter(key=key).values_list("tat", "paused_until").first()
            if state is None:
                self._ensure_bucket(key)
                continue
            tat, paused_until = state
            if paused_until > now:
                return Decision(False, paused_until - now)
            # Read after the UPDATE, so another caller may have moved tat on: this is an
            # estimate for the caller's sleep, never the admission decision itself.
            return Decision(False, max(0.0, max(tat, now) + interval - limit - now))
        return Decision(False, 0.0)

    def pause(self, key: str, seconds: float, *, now: float | None = None) -> None:
        from integrations.models import RateLimitBucket

        if seconds <= 0:
            return
        until = _clock(now) + seconds
        buckets = RateLimitBucket.objects.using(self.using)
        for _attempt in range(2):
            # Greatest: a shorter Retry-After never cuts a longer pause short.
            if buckets.filter(key=key).update(
                paused_until=Greatest(F("paused_until"), Value(until, output_field=FloatField()))
            ):
                return
            self._ensure_bucket(key)

    # --- leases -----------------------------------------------------------------------

    def lease_acquire(self, key: str, *, max_concurrent: int, token: str, lease_seconds: float,
                      now: float | None = None) -> Decision:
        from integrations.models import ConcurrencyLease, RateLimitBucket

        now = _clock(now)
        self._ensure_bucket(key)
        with transaction.atomic(using=self.using):
            # The lock that makes count-then-insert safe on PostgreSQL (no-op on SQLite,
            # whose IMMEDIATE transaction already holds the write lock).
            RateLimitBucket.objects.using(self.using).select_for_update().filter(key=key).values_list("id").first()
            leases = ConcurrencyLease.objects.using(self.using).filter(key=key)
            leases.filter(expires_at__lte=now).delete()
            if leases.count() < max_concurrent:
                ConcurrencyLease.objects.using(self.using).create(key=key, token=token, expires_at=now + lease_seconds)
                return ALLOWED
            earliest = leases.aggregate(earliest=Min("expires_at"))["earliest"]
        return Decision(False, max(0.0, (earliest or now) - now))

    def lease_renew(self, key: str, *, token: str, lease_seconds: float, now: float | None = None) -> bool:
        from integrations.models import ConcurrencyLease

        now = _clock(now)
        return bool(
            ConcurrencyLease.objects.using(self.using)
            .filter(key=key, token=token, expires_at__gt=now)
            .update(expires_at=now + lease_seconds)
        )

    def lease_release(self, key: str, *, token: str) -> None:
        from integrations.models import ConcurrencyLease

        ConcurrencyLease.objects.using(self.using).filter(key=key, token=token).delete()

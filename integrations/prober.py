"""The health sweep: claim the connections that are due, then fan their probes out as tasks.

Claim, then act (healthchecks' ``sendalerts``): one conditional UPDATE stamps a lease on
every due, unleased connection, using a claim value no other sweeper can produce, and the
claimed ids are read back by that value. Two beats, or a sweep that overlaps the previous
one, therefore never probe the same connection twice; a worker that dies mid-probe only
delays it until the lease runs out. Recording a result (``integrations.health``) clears
the lease and sets the next due time from the connection's own interval.

The probes run in ``integrations.connections_probe`` tasks of ``health.probe_chunk_size``
connections each, with ``health.probe_threads`` checks in flight inside a task: on a
2-core machine the concurrency that matters is I/O, not processes.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from integrations.models import Connection
from synthorg.config import get_config

logger = logging.getLogger(__name__)

# Upper bound on connections claimed by one sweep; the rest are claimed by the next one.
MAX_CLAIM_PER_SWEEP = 20_000


@dataclass(frozen=True)
class SweepReport:
    claimed: int
    tasks: int


def lease_seconds() -> int:
    """How long a claim holds: long enough for a queued chunk to run, short enough to recover."""
    health = get_config().integrations.health
    return max(120, health.timeout_seconds * 6, health.sweep_interval_seconds * 2)


def due_filter(now: datetime) -> Q:
    return (Q(health_check_enabled=True)
            & (Q(health_next_check_at__isnull=True) | Q(health_next_check_at__lte=now))
            & (Q(health_probe_lease_until__isnull=True) | Q(health_probe_lease_until__lte=now)))


def connections_claim_due(*, now: datetime | None = None, limit: int = MAX_CLAIM_PER_SWEEP) -> list[int]:
    """Lease every due connection to this sweep and return their ids (oldest due first)."""
    now = now or timezone.now()
    candidates = list(Connection.objects.filter(due_filter(now))
                      .order_by("health_next_check_at", "pk").values_list("pk", flat=True)[:limit])
    if not candidates:
        return []
    # The claim value is the lease end plus random microseconds: unique to this sweep, so
    # the rows it won can be read back without UPDATE ... RETURNING (not in the ORM).
    claim = (now + timedelta(seconds=lease_seconds())).replace(microsecond=secrets.randbelow(1_000_000))
    # The WHERE repeats the due test: a concurrent sweep that leased a row first wins it.
    Connection.objects.filter(due_filter(now), pk__in=candidates).update(health_probe_lease_until=claim)
    return list(Connection.objects.filter(pk__in=candidates, health_probe_lease_until=claim)
                .order_by("pk").values_list("pk", flat=True))


def health_sweep() -> SweepReport:
    """Claim what is due and enqueue one probe task per chunk."""
    from integrations.tasks import connections_probe_task

    claimed = connections_claim_due()
    size = get_config().integrations.health.probe_chunk_size
    chunks = [claimed[i:i + size] for i in range(0, len(claimed), size)]
    for chunk in chunks:
        connections_probe_task.delay(chunk)
    if claimed:
        logger.info("health sweep claimed %d connections in %d tasks", len(claimed), len(chunks))
    return SweepReport(claimed=len(claimed), tasks=len(chunks))

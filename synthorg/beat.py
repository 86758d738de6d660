"""Beat leader election: any number of beat processes may run, only one ticks.

On PostgreSQL the leader is whoever holds a session-level advisory lock on a connection the
scheduler opens for nothing else (Django's own connection is closed and reopened by
django-celery-beat between ticks, which would drop a lock held on it). The lock lives exactly
as long as the leader's session: a stopped or killed leader's socket closes and PostgreSQL
releases it at once; a leader whose host vanished is dropped by the server's TCP keepalives,
tuned from ``integrations.beat.takeover_seconds``. A standby asks for the lock every third of
that bound, so it ticks within the bound.

A lock alone cannot rule out a leader that lost its session a moment before sending, so each
firing is also a compare-and-set on the task's ``last_run_at`` row: only the beat that moved it
from the value it read sends the task. Two leaders (or an operator's second beat) can therefore
never fire one interval twice; the lock keeps them from competing at all.

SQLite (the embedded ``make run``) has no sessions to lock across processes: it runs exactly one
beat and elects nobody.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from synthorg.config import get_config
from synthorg.periodic import SynthorgScheduler

logger = logging.getLogger(__name__)

# One advisory lock key for "the beat leader"; advisory locks are per database, so two
# deployments on one PostgreSQL server (or two test databases) never meet.
LOCK_KEY = 0x5359_4E42_4541_54  # "SYNBEAT"
# The lock connection's application_name starts with this; heartbeat_check and the metrics
# find the leader through pg_locks + pg_stat_activity.
APPLICATION_PREFIX = "synthorg-beat "


def identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def uses_lock() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


class AdvisoryLockElector:
    """Holds (or waits for) the leader lock on its own PostgreSQL session."""

    def __init__(self, takeover_seconds: int) -> None:
        self.takeover = takeover_seconds
        self.poll_seconds = max(1.0, takeover_seconds / 3)
        self.identity = identity()
        self._conn: Any = None
        self.leader = False

    def _connect(self) -> Any:
        import psycopg

        db = settings.DATABASES["default"]
        third = max(1, self.takeover // 3)
        sixth = max(1, self.takeover // 6)
        # Server side: a peer that stopped answering is dropped within about two thirds of the
        # bound (idle + 2 probes), which releases its lock. Client side the same, so a leader
        # cut off from the database notices and stops ticking.
        options = (f"-c tcp_keepalives_idle={third} -c tcp_keepalives_interval={sixth} "
                   f"-c tcp_keepalives_count=2 -c tcp_user_timeout={third * 2000} "
                   f"-c statement_timeout={third * 1000}")
        params = {k: v for k, v in {
            "dbname": db["NAME"], "user": db.get("USER"), "password": db.get("PASSWORD"),
            "host": db.get("HOST"), "port": db.get("PORT"),
        }.items() if v}
        extra = {k: v for k, v in (db.get("OPTIONS") or {}).items() if k in {"sslmode", "sslrootcert"}}
        return psycopg.connect(
            autocommit=True, connect_timeout=third, application_name=APPLICATION_PREFIX + self.identity,
            keepalives=1, keepalives_idle=third, keepalives_interval=sixth, keepalives_count=2,
            tcp_user_timeout=third * 2000, options=options, **params, **extra)

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: S110  the session is being abandoned either way
                pass
        self._conn = None

    def check(self) -> bool:
        """True while this process is the leader; tries to become it otherwise."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            if self.leader:
                # The lock is the session's: a live session still holds it.
                self._conn.execute("SELECT 1").fetchone()
                return True
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
            self.leader = bool(row and row[0])
        except Exception as exc:  # any driver error: the session (and any lock) is gone
            if self.leader:
                logger.warning("beat %s lost the leader lock (%s); standing by", self.identity,
                               type(exc).__name__)
            else:
                logger.warning("beat %s cannot reach the database for the leader lock (%s)",
                               self.identity, type(exc).__name__)
            self.leader = False
            self._drop()
        return self.leader

    def release(self) -> None:
        if self.leader:
            logger.info("beat %s gives up leadership (stopping)", self.identity)
        self.leader = False
        self._drop()


class SingleElector:
    """SQLite: one beat by construction (the embedded runner starts exactly one)."""

    poll_seconds = 5.0

    def __init__(self) -> None:
        self.identity = identity()
        self.leader = True

    def check(self) -> bool:
        return True

    def release(self) -> None:
        self.leader = False


def record_leader(name: str) -> None:
    """The heartbeat row `beat-leader` names the current leader (heartbeat_check shows it)."""
    from synthorg.models import ServiceHeartbeat

    now = timezone.now()
    row, created = ServiceHeartbeat.objects.get_or_create(
        name="beat-leader", defaults={"last_seen_at": now, "count": 1, "holder": name})
    if not created:
        ServiceHeartbeat.objects.filter(pk=row.pk).update(last_seen_at=now, holder=name, count=row.count + 1)


class LeaderScheduler(SynthorgScheduler):
    """django-celery-beat's scheduler that ticks only while it leads (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.elector: AdvisoryLockElector | SingleElector = (
            AdvisoryLockElector(get_config().integrations.beat.takeover_seconds) if uses_lock()
            else SingleElector())
        self._leading = False
        self._lost_race = False
        super().__init__(*args, **kwargs)
        if isinstance(self.elector, SingleElector):
            logger.info("beat %s: SQLite database, no leader election (run exactly one beat)",
                        self.elector.identity)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        leading = self.elector.check()
        if leading and not self._leading:
            logger.info("beat %s is now the leader", self.elector.identity)
            self._reload()
            try:
                record_leader(self.elector.identity)
            except Exception as exc:  # the record is informative; ticking matters more
                logger.warning("beat leader record not written (%s)", type(exc).__name__)
        elif self._leading and not leading:
            logger.warning("beat %s is no longer the leader; standing by", self.elector.identity)
        self._leading = leading
        if not leading:
            return self.elector.poll_seconds
        # Never sleep past the next look at the lock: a leader that lost it stops within a poll.
        return min(super().tick(*args, **kwargs), self.elector.poll_seconds)

    def _reload(self) -> None:
        # What the previous leader fired is in the rows, not in this process's memory.
        self._schedule = self.all_as_schedule()
        self._heap = None

    def reserve(self, entry: Any) -> Any:
        new_entry = next(entry)
        # Compare-and-set: fire only if nobody moved last_run_at since this process read it.
        moved = (type(entry.model)._default_manager
                 .filter(Q(last_run_at=entry.last_run_at) | Q(last_run_at__isnull=True), pk=entry.model.pk)
                 .update(last_run_at=new_entry.last_run_at, total_run_count=new_entry.total_run_count))
        self._lost_race = not moved
        if self._lost_race:
            logger.warning("beat %s: %s was already sent by another beat; reloading the schedule",
                           self.elector.identity, entry.name)
        return new_entry

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        if self._lost_race:
            self._lost_race = False
            self._reload()
            return
        super().apply_entry(entry, producer=producer)

    def sync(self) -> None:
        # Each firing is written by reserve() at once; writing remembered entries later could
        # move a row back behind a newer leader's firing.
        self._dirty.clear()

    def close(self) -> None:
        super().close()
        self.elector.release()


def leader_now() -> str | None:
    """The identity of the beat holding the lock right now (PostgreSQL), else None."""
    from django.db import connection

    if not uses_lock():
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s", [LOCK_KEY])
        row = cursor.fetchone()
    return row[0][len(APPLICATION_PREFIX):] if row and row[0] else None


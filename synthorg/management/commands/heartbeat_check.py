"""Exit non-zero when beat's heartbeat is stale (a container health check for beat).

It also names the beat leader: on PostgreSQL the beat holding the leader lock right now (from
pg_locks), and the last leadership change recorded in the `beat-leader` heartbeat row."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from synthorg.models import ServiceHeartbeat


class Command(BaseCommand):
    help = "Fail when the periodic heartbeat has not run for --max-age seconds."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-age", type=int, default=300)

    def handle(self, *args: Any, max_age: int, **options: Any) -> None:
        beat = ServiceHeartbeat.objects.filter(name="beat").first()
        if beat is None:
            raise CommandError("no heartbeat recorded yet")
        age = timezone.now() - beat.last_seen_at
        if age > timedelta(seconds=max_age):
            raise CommandError(f"last heartbeat {int(age.total_seconds())}s ago (limit {max_age}s)")
        self.stdout.write(f"heartbeat {int(age.total_seconds())}s ago")
        from synthorg.beat import leader_now, uses_lock

        record = ServiceHeartbeat.objects.filter(name="beat-leader").first()
        since = (f" (leader since {record.last_seen_at:%Y-%m-%d %H:%M:%S}Z, {record.count} leadership changes)"
                 if record else "")
        if not uses_lock():
            self.stdout.write(f"beat leader: single beat, no election (SQLite){since}")
            return
        leader = leader_now()
        if leader is None:
            # A heartbeat younger than --max-age with no lock held: the leader died moments ago.
            self.stdout.write(f"beat leader: none holds the lock now (a standby takes over){since}")
        else:
            self.stdout.write(f"beat leader: {leader}{since if record and record.holder == leader else ''}")

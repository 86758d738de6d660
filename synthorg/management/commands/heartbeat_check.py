"""Exit non-zero when beat's heartbeat is stale (a container health check for beat)."""
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

"""Send a task through the broker and wait for a worker's answer."""
from __future__ import annotations

import secrets
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from synthorg.tasks import ping_task


class Command(BaseCommand):
    help = "Round-trip a task through the broker and a worker (exit 1 if nobody answers)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0)

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        token = secrets.token_hex(8)
        result = ping_task.delay(token)
        try:
            answer = result.get(timeout=timeout)
        except CeleryTimeoutError:
            raise CommandError(f"no worker answered within {timeout:g}s") from None
        if answer != f"pong:{token}":
            raise CommandError(f"unexpected answer {answer!r}")
        self.stdout.write(f"pong from a worker (task {result.id})")

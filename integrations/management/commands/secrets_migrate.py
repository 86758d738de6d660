"""`manage.py secrets_migrate --to <backend>`: move every stored secret to another backend.

Copies, reads back and compares each secret before switching its reference; idempotent and
resumable (a second run finishes what a killed one left and changes nothing already moved).
Source copies in a secret manager are destroyed only with --purge-source, after a clean run.
"""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.secrets.migrate import TARGETS, secrets_migrate
from synthorg.errors import SynthorgError

ACTOR = "manage.py secrets_migrate"


class Command(BaseCommand):
    help = "Move every stored secret to another secret backend (idempotent, resumable, audited)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", required=True, choices=TARGETS, help="the target backend")
        parser.add_argument("--dry-run", action="store_true", help="count what would move; change nothing")
        parser.add_argument("--batch-size", type=int, default=100, help="rows read per query (default 100)")
        parser.add_argument("--purge-source", action="store_true",
                            help="after a run without failures, destroy the source copies in a secret manager")

    def handle(self, *args: Any, to: str, dry_run: bool, batch_size: int, purge_source: bool, **options: Any) -> None:
        if not 1 <= batch_size <= 10_000:
            raise CommandError("--batch-size must be between 1 and 10000")
        try:
            report = secrets_migrate(to=to, dry_run=dry_run, batch_size=batch_size, purge_source=purge_source,
                                     actor=ACTOR)
        except SynthorgError as exc:
            raise CommandError(exc.detail) from None
        verb = "would move" if dry_run else "moved"
        self.stdout.write(f"{verb}: {report.moved}")
        self.stdout.write(f"already at {to}: {report.already}")
        self.stdout.write(f"failed: {report.failed}")
        if purge_source:
            self.stdout.write(f"source copies destroyed: {report.purged}")
        for line in report.failures:
            self.stdout.write(f"  not moved: {line}")
        if report.failed:
            raise CommandError(f"{report.failed} secret(s) were not moved; run the command again when the backend "
                               "is reachable (nothing already moved is touched again).")

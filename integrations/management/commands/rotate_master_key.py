"""`manage.py rotate_master_key`: re-encrypt every stored secret under the current master key.

Rotation procedure: put the new key in the master key variable and the old one(s) in
`secret_backend.previous_master_keys_env` (comma separated), restart, run this command,
then drop the old key. Each batch commits on its own, so an interrupted run is resumed by
running it again; a second run over a finished rotation changes nothing.
"""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import services
from synthorg.errors import SynthorgError

ACTOR = "manage.py rotate_master_key"


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret under the current master key (idempotent, resumable). "
            "Prints how many were rotated, already current, and failed; exits 1 if any failed.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=200,
                            help="records re-encrypted per transaction (default 200)")

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if not 1 <= batch_size <= 10_000:
            raise CommandError("--batch-size must be between 1 and 10000")
        try:
            report = services.master_key_rotate(actor=ACTOR, batch_size=batch_size)
        except SynthorgError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"rotated: {report.rotated}")
        self.stdout.write(f"already current: {report.already_current}")
        self.stdout.write(f"failed: {report.failed}")
        if report.failed:
            raise CommandError(
                f"{report.failed} secret record(s) could not be decrypted by the current or previous keys and "
                "were left as they are: add the key that wrote them to the previous keys and run again.")
        self.stdout.write(self.style.SUCCESS("All secrets are encrypted under the current master key."))

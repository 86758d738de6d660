"""`manage.py rotate_provider_secrets`: re-encrypt providers' embedded credentials under the current key.

The twin of `rotate_master_key` for the deprecated embedded credentials, which live on the
provider rows rather than in integrations' secret records. Idempotent: rows already under
the current key are left alone.
"""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from providers.services import provider_secrets_rotate


class Command(BaseCommand):
    help = "Re-encrypt every provider's deprecated embedded credentials under the current master key."

    def handle(self, *args: Any, **options: Any) -> None:
        report = provider_secrets_rotate(actor="manage.py rotate_provider_secrets")
        self.stdout.write(f"rotated {report.rotated}, already current {report.already_current}, "
                          f"failed {report.failed}")
        if report.failed:
            raise CommandError(f"{report.failed} providers could not be decrypted by any configured key")

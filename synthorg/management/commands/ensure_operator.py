"""Create the embedded mode's operator account once (used by `make run`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create a superuser with the password read from a file, if that user does not exist yet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="operator")
        parser.add_argument("--password-file", required=True,
                            help="file holding the password (never pass a password on the command line)")

    def handle(self, *args: Any, username: str, password_file: str, **options: Any) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            self.stdout.write(f"operator account {username!r} exists")
            return
        password = Path(password_file).read_text(encoding="utf-8").strip()
        user_model.objects.create_superuser(username=username, password=password, email="")
        self.stdout.write(f"created operator account {username!r}")

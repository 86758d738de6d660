"""`manage.py oauth_connect <connection> --device`: the device flow from a terminal.

Shows the user code and the verification URL, then a live progress line while Celery
tasks poll the provider, until the user approves (exit 0), denies or time runs out
(non-zero). `--client-credentials` fetches a machine token instead.
"""
from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from oauthflow import selectors, services
from oauthflow.models import OAuthDeviceFlow
from synthorg.errors import SynthorgError


class Command(BaseCommand):
    help = "Connect an oauth_app connection from the terminal (device flow, or client credentials)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("connection", help="oauth_app connection name")
        grant = parser.add_mutually_exclusive_group(required=True)
        grant.add_argument("--device", action="store_true", help="device authorization (RFC 8628)")
        grant.add_argument("--client-credentials", action="store_true", help="client credentials grant")
        parser.add_argument("--scope", action="append", default=[], help="scope to request (repeatable)")
        parser.add_argument("--refresh-every", type=float, default=0.5, help=argparse_hidden())

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["connection"]
        try:
            if options["client_credentials"]:
                token = services.client_credentials_connect(connection_name=name, scopes=options["scope"] or None,
                                                            user="manage.py oauth_connect")
                self.stdout.write(self.style.SUCCESS(
                    f"Connected {name} (client credentials); token expires at {token.expires_at or 'never'}."))
                return
            flow = services.device_flow_start(connection_name=name, scopes=options["scope"] or None,
                                              user="manage.py oauth_connect")
        except SynthorgError as exc:
            raise CommandError(exc.detail) from None
        self._watch(flow, options["refresh_every"])

    def _watch(self, flow: OAuthDeviceFlow, every: float) -> None:
        self.stdout.write(f"To connect, open {flow.verification_uri} and enter the code:\n\n    {flow.user_code}\n")
        if flow.verification_uri_complete:
            self.stdout.write(f"(or open {flow.verification_uri_complete})\n")
        tty = self.stdout.isatty()
        last_line = ""
        started = time.monotonic()
        try:
            while True:
                current = selectors.device_flow_get(flow.pk)
                if current is None:
                    raise CommandError("The device flow disappeared (was the connection deleted?).")
                if current.status != OAuthDeviceFlow.Status.PENDING:
                    break
                left = max(0, int((current.expires_at - timezone.now()).total_seconds()))
                line = (f"waiting for approval: {int(time.monotonic() - started)}s elapsed, {current.polls} polls, "
                        f"every {current.interval_seconds}s, {left}s left")
                if tty:
                    self.stdout.write("\r" + line.ljust(len(last_line)), ending="")
                    self.stdout.flush()
                elif line.split(":")[0] != last_line.split(":")[0] or current.polls != getattr(self, "_polls", -1):
                    self.stdout.write(line)
                self._polls = current.polls
                last_line = line
                time.sleep(every)
        except KeyboardInterrupt:
            raise CommandError("Interrupted; the device flow keeps running until it expires.") from None
        if tty:
            self.stdout.write("")
        if current.status == OAuthDeviceFlow.Status.APPROVED:
            self.stdout.write(self.style.SUCCESS(f"Approved: {current.connection.name} is connected."))
            return
        raise CommandError(f"Device flow {current.status}: {current.error or 'no token was issued'}.")


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS

"""`manage.py connection_check <name>`: the command-line twin of GET /api/v1/connections/{name}/health."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import health
from integrations.types.probing import DEGRADED, UNHEALTHY
from synthorg.errors import NotFound


class Command(BaseCommand):
    help = ("Check one connection now, record the result (same smoothing as the prober) and print it. "
            "Exit status 1 when the check fails.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="connection name (case-insensitive)")
        parser.add_argument("--recent", action="store_true",
                            help="return a result fresher than integrations.health.fresh_result_seconds "
                                 "instead of probing (as the API does without ?force=true)")
        parser.add_argument("--json", action="store_true", help="print the API's JSON body")

    def handle(self, *args: Any, name: str, recent: bool, json: bool, **options: Any) -> None:
        # An operator at a terminal is staff: probe now unless asked for a recent result.
        try:
            outcome = health.connection_health_check(name=name, force=not recent, actor="manage.py connection_check")
        except NotFound as exc:
            raise CommandError(exc.detail) from None
        if json:
            self.stdout.write(_json(outcome.as_dict()))
        else:
            result = outcome.result
            latency = f", {result.latency_ms} ms" if result.latency_ms is not None else ""
            cached = " (recent result, not probed)" if outcome.cached else ""
            self.stdout.write(f"{outcome.name}: {outcome.status} (check: {result.status}{latency}, "
                              f"{outcome.consecutive_failures} consecutive failures){cached}")
            if result.detail:
                self.stdout.write(f"  {result.detail}")
        if outcome.result.status in (DEGRADED, UNHEALTHY):
            raise CommandError(f"the check of {outcome.name} failed: {outcome.result.status}")


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=2, default=str)

"""Launch an installed MCP server as configured, speak MCP to it over stdio, print its tools."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.services import installation_verify
from synthorg.errors import SynthorgError


class Command(BaseCommand):
    help = "Verify an installed catalog entry: launch it, list its tools, stop it (bounded by verify_timeout_seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("entry_id")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = installation_verify(entry_id=options["entry_id"])
        except SynthorgError as exc:
            raise CommandError(exc.detail) from None
        if options["json"]:
            self.stdout.write(json.dumps({"ok": result.ok, "tools": result.tools, "error": result.error}, indent=2))
        elif result.ok:
            self.stdout.write(f"{options['entry_id']}: OK, {len(result.tools)} tools")
            for tool in result.tools:
                self.stdout.write(f"  {tool['name']}: {tool['description']}")
        if not result.ok:
            raise CommandError(f"{options['entry_id']}: verify failed: {result.error}")

"""Print the effective MCP configuration in the `mcpServers` JSON shape MCP clients read."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from catalog.install import mcp_servers_document, merge_installed_servers
from catalog.services import mcp_config_materialise


class Command(BaseCommand):
    help = ("Print the effective MCP configuration (YAML mcp.servers + catalog installations) as "
            "{\"mcpServers\": ...}. Secrets are placeholders unless --with-secrets (audited).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--with-secrets", action="store_true",
                            help="materialise credentials from the connections, for piping into a launcher")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["with_secrets"]:
            result = mcp_config_materialise(actor="cli:mcp_config")
        else:
            result = merge_installed_servers(materialise=False)
        for name in result.clashes:
            self.stderr.write(f"warning: installation {name!r} is shadowed by the YAML mcp.servers entry of "
                              "the same name (the YAML wins)")
        for skipped in result.skipped:
            self.stderr.write(f"warning: installation {skipped.entry_id!r} skipped: {skipped.reason}")
        self.stdout.write(json.dumps(mcp_servers_document(result), indent=2, sort_keys=True))

"""The effective MCP configuration: the user's YAML `mcp.servers` plus catalog installations.

Installations are merged in at read time, so they survive restarts without the service
ever rewriting the user's YAML. Rules:

* the YAML wins a name clash (an installation named like a YAML server is left out and
  the clash is reported);
* an installation whose entry vanished from the catalog, or that cannot be launched as
  configured, is skipped with a warning;
* credentials are read from the connection only with ``materialise=True`` (a launcher);
  otherwise secret values are placeholders.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from catalog.entries import bundled_catalog
from catalog.launch import LaunchUnavailable, render_server
from catalog.models import Installation
from synthorg.config import Config, MCPConfig, MCPServerConfig, get_config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    entry_id: str
    reason: str


@dataclass
class MergeResult:
    servers: list[MCPServerConfig]
    clashes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Secret values in `servers` (materialised only): callers scrub them from any message.
    secrets: list[str] = field(default_factory=list)

    @property
    def mcp_config(self) -> MCPConfig:
        return MCPConfig(servers=list(self.servers))


def merge_installed_servers(config: Config | None = None, *, materialise: bool = False) -> MergeResult:
    """YAML servers first (in file order), then installations by entry id."""
    config = config or get_config()
    catalog = bundled_catalog()
    servers = list(config.mcp.servers)
    yaml_names = {s.name for s in servers}
    result = MergeResult(servers=servers)
    for installation in Installation.objects.select_related("connection").order_by("entry_id"):
        entry = catalog.get(installation.entry_id)
        if entry is None:
            logger.warning("MCP installation %s skipped: its entry is no longer in the catalog",
                           installation.entry_id)
            result.skipped.append(Skipped(installation.entry_id, "the entry is no longer in the catalog"))
            continue
        if entry.id in yaml_names:
            logger.warning("MCP installation %s skipped: the YAML mcp.servers defines a server of that name",
                           entry.id)
            result.clashes.append(entry.id)
            continue
        try:
            rendered = render_server(entry, installation, config, materialise=materialise)
        except LaunchUnavailable as exc:
            logger.warning("MCP installation %s skipped: %s", entry.id, exc)
            result.skipped.append(Skipped(entry.id, str(exc)))
            continue
        result.servers.append(rendered.server)
        result.secrets.extend(rendered.secrets)
    return result


def mcp_servers_document(result: MergeResult) -> dict[str, Any]:
    """The `{"mcpServers": {...}}` shape MCP clients (Claude Desktop, the SDK's stdio params) read.

    stdio servers carry `command`, `args`, `env`; remote ones (`sse`, `streamable_http`)
    carry `type` and `url` (the YAML `command` of a remote server is its URL).
    """
    servers: dict[str, Any] = {}
    for server in result.servers:
        if server.transport == "stdio":
            servers[server.name] = {"command": server.command, "args": list(server.args), "env": dict(server.env)}
        else:
            servers[server.name] = {"type": "sse" if server.transport == "sse" else "http", "url": server.command}
    return {"mcpServers": servers}

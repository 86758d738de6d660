from __future__ import annotations

import json
import logging
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from mcp.client.stdio import StdioServerParameters

from catalog import services
from catalog.install import mcp_servers_document, merge_installed_servers
from catalog.models import Installation
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

YAML_MEMORY = {"name": "memory", "command": "my-memory", "args": ["--fast"], "env": {"A": "b"}, "transport": "stdio"}


def test_yaml_servers_come_first_and_installs_follow(mcp_settings: Any, github: Any) -> None:
    mcp_settings(servers=[{"name": "mine", "command": "run-mine"}])
    services.installation_install(entry_id="memory")
    services.installation_install(entry_id="github", connection_name="gh")
    result = merge_installed_servers()
    assert [s.name for s in result.servers] == ["mine", "github", "memory"]
    assert result.clashes == [] and result.skipped == []


def test_yaml_wins_a_name_clash_and_the_clash_is_reported(mcp_settings: Any, caplog: Any) -> None:
    mcp_settings(servers=[YAML_MEMORY])
    services.installation_install(entry_id="memory")
    with caplog.at_level(logging.WARNING, logger="catalog.install"):
        result = merge_installed_servers()
    assert [(s.name, s.command) for s in result.servers] == [("memory", "my-memory")]
    assert result.clashes == ["memory"]
    assert "YAML mcp.servers defines a server of that name" in caplog.text


def test_install_whose_entry_vanished_is_skipped_with_a_warning(caplog: Any) -> None:
    Installation.objects.create(entry_id="retired-server")
    services.installation_install(entry_id="memory")
    with caplog.at_level(logging.WARNING, logger="catalog.install"):
        result = merge_installed_servers()
    assert [s.name for s in result.servers] == ["memory"]
    assert [(s.entry_id, s.reason) for s in result.skipped] == [
        ("retired-server", "the entry is no longer in the catalog")]
    assert "retired-server skipped" in caplog.text


def test_credentials_are_read_only_when_materialised(github: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    services.installation_install(entry_id="github", connection_name="gh")
    reads: list[str] = []
    import integrations.services as connection_services

    real = connection_services.connection_credentials
    monkeypatch.setattr(connection_services, "connection_credentials",
                        lambda c: reads.append(c.name) or real(c))
    placeholder = merge_installed_servers().servers[0]
    assert placeholder.env == {"GITHUB_PERSONAL_ACCESS_TOKEN": "<secret:gh.token>"}
    assert reads == []
    materialised = merge_installed_servers(materialise=True)
    assert materialised.servers[0].env == {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_secret_value_123"}
    assert reads == ["gh"]
    assert materialised.secrets == ["ghp_secret_value_123"]


def test_postgres_url_argument_quotes_credentials(pg: Any) -> None:
    services.installation_install(entry_id="postgres", connection_name="pg")
    shown = merge_installed_servers().servers[0].args[-1]
    assert shown == "postgresql://app:<secret:pg.password>@db.internal:5433/appdb"
    real = merge_installed_servers(materialise=True).servers[0].args[-1]
    assert real == "postgresql://app:p%40ss%2Fword%21@db.internal:5433/appdb"


def test_sqlite_gets_its_db_path_and_filesystem_its_directories(sqlite_db: Any, mcp_settings: Any,
                                                               tmp_path: Path) -> None:
    mcp_settings(mcp_catalog={"allowed_roots": [str(tmp_path)]})
    services.installation_install(entry_id="sqlite", connection_name="lite")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    services.installation_install(entry_id="filesystem", options={"directories": [str(tmp_path / "a"),
                                                                                   str(tmp_path / "b")]})
    servers = {s.name: s for s in merge_installed_servers().servers}
    assert servers["sqlite"].command == "uvx"
    assert servers["sqlite"].args[-2:] == ["--db-path", str(tmp_path / "app.sqlite3")]
    assert servers["filesystem"].args[-2:] == [str(tmp_path / "a"), str(tmp_path / "b")]


def test_optional_option_left_out_when_unset(tmp_path: Path) -> None:
    services.installation_install(entry_id="memory")
    assert merge_installed_servers().servers[0].env == {}
    services.installation_install(entry_id="memory", options={"storage_file": str(tmp_path / "m.json")})
    assert merge_installed_servers().servers[0].env == {"MEMORY_FILE_PATH": str(tmp_path / "m.json")}


def test_puppeteer_points_at_the_configured_chromium(mcp_settings: Any) -> None:
    mcp_settings(mcp_catalog={"chromium_path": "/opt/chromium/chrome"})
    services.installation_install(entry_id="puppeteer")
    env = merge_installed_servers().servers[0].env
    assert env["PUPPETEER_EXECUTABLE_PATH"] == "/opt/chromium/chrome"
    assert json.loads(env["PUPPETEER_LAUNCH_OPTIONS"])["executablePath"] == "/opt/chromium/chrome"
    assert env["PUPPETEER_SKIP_DOWNLOAD"] == "true"


def test_node_modules_dir_launches_the_pinned_package_offline(mcp_settings: Any, node_modules: Path) -> None:
    services.installation_install(entry_id="memory")
    assert merge_installed_servers().servers[0].command == "npx"
    mcp_settings(mcp_catalog={"node_modules_dir": str(node_modules)})
    server = merge_installed_servers().servers[0]
    assert server.command == "node"
    assert server.args == [str(node_modules / "@modelcontextprotocol/server-memory/dist/index.js")]


def test_node_modules_without_the_package_skips_the_install(mcp_settings: Any, tmp_path: Path) -> None:
    mcp_settings(mcp_catalog={"node_modules_dir": str(tmp_path)})
    services.installation_install(entry_id="memory")
    result = merge_installed_servers()
    assert result.servers == []
    assert "is not installed under" in result.skipped[0].reason


def test_mcp_servers_document_loads_in_an_mcp_client(mcp_settings: Any, github: Any, pg: Any) -> None:
    """Every stdio entry is exactly what the SDK's StdioServerParameters (and Claude Desktop) read."""
    mcp_settings(servers=[{"name": "remote", "command": "https://mcp.example/sse", "transport": "sse"}])
    for entry_id, connection in (("github", "gh"), ("postgres", "pg"), ("memory", None), ("puppeteer", None)):
        services.installation_install(entry_id=entry_id, connection_name=connection)
    document = json.loads(json.dumps(mcp_servers_document(merge_installed_servers(materialise=True))))
    assert set(document) == {"mcpServers"}
    assert document["mcpServers"]["remote"] == {"type": "sse", "url": "https://mcp.example/sse"}
    stdio = {k: v for k, v in document["mcpServers"].items() if k != "remote"}
    assert set(stdio) == {"github", "postgres", "memory", "puppeteer"}
    for name, server in stdio.items():
        assert set(server) == {"command", "args", "env"}, name
        params = StdioServerParameters.model_validate(server)
        assert params.command == server["command"] and params.args == server["args"]
        assert all(isinstance(v, str) for v in server["env"].values())


def test_mcp_config_command_prints_placeholders_and_warnings(mcp_settings: Any, github: Any) -> None:
    mcp_settings(servers=[YAML_MEMORY])
    services.installation_install(entry_id="github", connection_name="gh")
    services.installation_install(entry_id="memory")
    out, err = StringIO(), StringIO()
    call_command("mcp_config", stdout=out, stderr=err)
    document = json.loads(out.getvalue())
    assert document["mcpServers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] == "<secret:gh.token>"
    assert document["mcpServers"]["memory"]["command"] == "my-memory"
    assert "ghp_secret_value_123" not in out.getvalue()
    assert "'memory' is shadowed" in err.getvalue()
    assert not AuditEvent.objects.filter(action="mcp.config.materialise").exists()


def test_mcp_config_with_secrets_materialises_and_is_audited(github: Any) -> None:
    services.installation_install(entry_id="github", connection_name="gh")
    out = StringIO()
    call_command("mcp_config", "--with-secrets", stdout=out)
    document = json.loads(out.getvalue())
    assert document["mcpServers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] == "ghp_secret_value_123"
    event = AuditEvent.objects.get(action="mcp.config.materialise")
    assert event.details == {"servers": ["github"]}

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from integrations import services as connection_services

PEERS_NODE_MODULES = Path(__file__).resolve().parents[1] / "peers" / "node_modules"


@pytest.fixture
def node_modules() -> Path:
    """The npm-pinned real servers (`make npm` → `npm ci` in tests/peers); never fetched at test time."""
    if not (PEERS_NODE_MODULES / "@modelcontextprotocol" / "server-memory").is_dir():
        pytest.fail("tests/peers/node_modules lacks the MCP servers: run `make npm` (npm ci in tests/peers)")
    return PEERS_NODE_MODULES


@pytest.fixture
def mcp_settings(settings: Any, tmp_path: Path) -> Callable[..., None]:
    """`mcp_settings(servers=[...], catalog={...}, tunnel={...})`: a YAML file plus integrations overrides."""

    def apply(*, servers: list[dict[str, Any]] | None = None, **integrations: Any) -> None:
        path = tmp_path / "synthorg.yaml"
        path.write_text(yaml.safe_dump({"mcp": {"servers": servers or []}}))
        settings.SYNTHORG_CONFIG_FILE = str(path)
        settings.SYNTHORG_CONFIG_OVERRIDES = integrations

    return apply


@pytest.fixture
def make_connection() -> Callable[..., Any]:
    def make(name: str, connection_type: str, **credentials: Any) -> Any:
        return connection_services.connection_create(name=name, connection_type=connection_type,
                                                     credentials=credentials)

    return make


@pytest.fixture
def github(make_connection: Callable[..., Any]) -> Any:
    return make_connection("gh", "github", token="ghp_secret_value_123")


@pytest.fixture
def pg(make_connection: Callable[..., Any]) -> Any:
    return make_connection("pg", "database", dialect="postgres", host="db.internal", port=5433,
                           username="app", password="p@ss/word!", database="appdb")


@pytest.fixture
def sqlite_db(make_connection: Callable[..., Any], tmp_path: Path) -> Any:
    return make_connection("lite", "database", dialect="sqlite", database=str(tmp_path / "app.sqlite3"))

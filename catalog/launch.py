"""Turn an installation into a launchable server: command, arguments, environment.

Two modes. Without ``materialise`` nothing secret is read: a secret field becomes the
placeholder ``<secret:CONNECTION.FIELD>`` (safe to print, to show in the API, to log).
With it, credentials are read from the connection's secret backend, for a launcher only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from catalog.entries import TEMPLATE_RE, CatalogEntry
from catalog.models import Installation
from synthorg.config import Config, MCPServerConfig
from synthorg.path_confinement import PathRefused, confine


class LaunchUnavailable(Exception):
    """The server cannot be launched as configured (missing package, connection field)."""


@dataclass
class RenderedServer:
    server: MCPServerConfig
    # Secret values placed in the server's env/args (materialised only), to scrub from output.
    secrets: list[str] = field(default_factory=list)


def secret_placeholder(connection_name: str, field_name: str) -> str:
    return f"<secret:{connection_name}.{field_name}>"


def _npm_bin(node_modules: Path, entry: CatalogEntry) -> str:
    """The installed package's bin script, after checking its version is the pinned one."""
    package_dir = node_modules / entry.package["name"]
    try:
        manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise LaunchUnavailable(f"{entry.package['name']} is not installed under {node_modules} "
                                f"(integrations.mcp_catalog.node_modules_dir)") from None
    if manifest.get("version") != entry.package["version"]:
        raise LaunchUnavailable(f"{entry.package['name']} under {node_modules} is version "
                                f"{manifest.get('version')}, the catalog pins {entry.package['version']}")
    bins = manifest.get("bin")
    script = bins if isinstance(bins, str) else (bins or {}).get(entry.package["bin"])
    if not script:
        raise LaunchUnavailable(f"{entry.package['name']} declares no bin {entry.package['bin']!r}")
    return str((package_dir / script).resolve())


def launch_recipe(entry: CatalogEntry, config: Config) -> tuple[str, list[str]]:
    """The command and leading arguments: the pinned npx/uvx recipe, or the offline node_modules."""
    node_modules = config.integrations.mcp_catalog.node_modules_dir
    if node_modules and entry.package["manager"] == "npm":
        return "node", [_npm_bin(Path(node_modules), entry)]
    return entry.launch_command, list(entry.launch_args)


class _Values:
    """Resolves template references for one installation."""

    def __init__(self, installation: Installation, config: Config, materialise: bool) -> None:
        self.installation = installation
        self.config = config
        self.materialise = materialise
        self.secrets: list[str] = []
        self._credentials: dict[str, Any] | None = None

    def _connection_values(self) -> dict[str, Any]:
        connection = self.installation.connection
        if connection is None:
            raise LaunchUnavailable(f"installation {self.installation.entry_id!r} has no connection")
        if self._credentials is None:
            if self.materialise:
                from integrations.services import connection_credentials

                self._credentials = connection_credentials(connection)
                from integrations.types import get_type

                secret_names = get_type(connection.connection_type).secret_field_names
                self.secrets.extend(str(v) for k, v in self._credentials.items() if k in secret_names and v)
            else:
                # No secret is read: fields stored as secrets become placeholders.
                self._credentials = {**connection.config, **{
                    name: secret_placeholder(connection.name, name) for name in connection.secret_fields}}
        return self._credentials

    def get(self, kind: str, sep: str, name: str) -> Any:
        if kind == "option":
            return self.installation.options.get(name)
        if kind == "setting":
            return getattr(self.config.integrations.mcp_catalog, name)
        values = self._connection_values()
        if sep == ":":
            return self._derived(name, values)
        return values.get(name)

    def _derived(self, name: str, values: dict[str, Any]) -> str:
        if name == "postgres_url":
            user = values.get("username") or ""
            password = values.get("password") or ""
            if password and self.materialise:
                password = quote(str(password), safe="")
            auth = f"{quote(user, safe='')}{':' + password if password else ''}@" if user else ""
            port = values.get("port") or 5432
            return f"postgresql://{auth}{values.get('host')}:{port}/{quote(str(values.get('database') or ''))}"
        raise LaunchUnavailable(f"unknown derived value {name!r}")  # the catalog check prevents this


def _render(template: str, values: _Values) -> str | list[str] | None:
    """One template: a list when it is exactly a list option, None when a value is missing."""
    whole = TEMPLATE_RE.fullmatch(template)
    if whole:
        value = values.get(*whole.groups())
        if isinstance(value, list):
            return [str(v) for v in value]
        return None if value in (None, "") else str(value)
    missing = False

    def substitute(match: Any) -> str:
        nonlocal missing
        value = values.get(*match.groups())
        if value in (None, ""):
            missing = True
            return ""
        return str(value)

    rendered = TEMPLATE_RE.sub(substitute, template)
    return None if missing else rendered


def connection_path_problem(connection: Any) -> str | None:
    """Why a sqlite connection's file may not be handed to a server, or None (issue 12)."""
    if connection is None or connection.config.get("dialect") != "sqlite":
        return None
    try:
        confine(connection.config.get("database"), kind="any")
    except PathRefused as exc:
        return str(exc)
    return None


def _check_paths(entry: CatalogEntry, installation: Installation) -> None:
    """Paths are checked again at every launch: a symlink may have moved, the roots narrowed."""
    for name, spec in entry.options.items():
        value = installation.options.get(name)
        if value is None or spec.type not in {"file_path", "directory_list"}:
            continue
        for item in value if isinstance(value, list) else [value]:
            try:
                confine(item, kind="any")
            except PathRefused as exc:
                raise LaunchUnavailable(f"option {name}: {exc}") from None
    if entry.connection_dialect == "sqlite" and (problem := connection_path_problem(installation.connection)):
        raise LaunchUnavailable(f"the connection's database file {problem}")


def render_server(entry: CatalogEntry, installation: Installation, config: Config, *,
                  materialise: bool = False) -> RenderedServer:
    """The installation as an `MCPServerConfig` named after the entry id.

    An env var or argument whose template refers to an optional value that is not set is
    left out (Memory without a storage file uses the server's default).
    """
    _check_paths(entry, installation)
    command, args = launch_recipe(entry, config)
    values = _Values(installation, config, materialise)
    for template in entry.args:
        rendered = _render(template, values)
        if isinstance(rendered, list):
            args.extend(rendered)
        elif rendered is not None:
            args.append(rendered)
    env = dict(entry.launch_env)
    for name, template in entry.env.items():
        rendered = _render(template, values)
        if isinstance(rendered, list):
            env[name] = ",".join(rendered)
        elif rendered is not None:
            env[name] = rendered
    server = MCPServerConfig(name=entry.id, command=command, args=args, env=env, transport=entry.transport)
    return RenderedServer(server=server, secrets=values.secrets)

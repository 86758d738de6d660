"""The bundled MCP server catalog (`catalog/bundled.json`): loaded once, validated, read-only.

The file is checked against `bundled.schema.json` and then against the rest of the code
(connection types and dialects that exist, templates that name known options and fields,
launch recipes pinned to the package's version). A broken file is reported by the system
check `catalog.E001`, which stops every process at startup with the problem's location.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUNDLED_PATH = Path(__file__).with_name("bundled.json")
SCHEMA_PATH = Path(__file__).with_name("bundled.schema.json")

# `${connection.<field>}`, `${connection:<derived>}`, `${option.<name>}`, `${setting.<key>}`
TEMPLATE_RE = re.compile(r"\$\{(connection|option|setting)([.:])([A-Za-z0-9_]+)\}")
DERIVED_VALUES = {"postgres_url"}
SETTINGS = {"chromium_path"}


class CatalogInvalid(Exception):
    """The catalog file breaks its schema or a rule; the message names where."""


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: str
    required: bool
    description: str
    pattern: str | None = None


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    description: str
    tags: tuple[str, ...]
    capabilities: tuple[str, ...]
    transport: str
    package: dict[str, str]
    launch_command: str
    launch_args: tuple[str, ...]
    launch_env: dict[str, str]
    connection_type: str | None
    connection_dialect: str | None
    env: dict[str, str]
    args: tuple[str, ...]
    options: dict[str, OptionSpec] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The entry as the API shows it (no secret: templates name fields, never values)."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "capabilities": list(self.capabilities),
            "transport": self.transport,
            "package": dict(self.package),
            "launch": {"command": self.launch_command, "args": list(self.launch_args),
                       "env": dict(self.launch_env)},
            "connection": ({"type": self.connection_type, "dialect": self.connection_dialect}
                           if self.connection_type else None),
            "env": dict(self.env),
            "args": list(self.args),
            "options": {name: {"type": o.type, "required": o.required, "description": o.description,
                               "pattern": o.pattern} for name, o in self.options.items()},
        }


def _schema_problems(document: Any) -> list[str]:
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(f"{where}: {error.message}")
    return problems


def _rule_problems(raw: dict[str, Any], index: int) -> list[str]:
    from integrations.types import REGISTRY
    from integrations.types.database import DIALECTS

    where = f"entries/{index} ({raw['id']})"
    problems: list[str] = []
    connection = raw["connection"]
    fields: set[str] = set()
    if connection is not None:
        ctype = REGISTRY.get(connection["type"])
        if ctype is None:
            problems.append(f"{where}/connection/type: unknown connection type {connection['type']!r}")
        else:
            fields = {f.name for f in ctype.fields}
        dialect = connection.get("dialect")
        if dialect is not None and (connection["type"] != "database" or dialect not in DIALECTS):
            problems.append(f"{where}/connection/dialect: {dialect!r} is not a dialect of {connection['type']!r}")
    package = raw["package"]
    pinned = any(package["version"] in arg for arg in raw["launch"]["args"])
    if not pinned:
        problems.append(f"{where}/launch/args: must pin {package['name']} to version {package['version']}")
    templates = [(f"env/{k}", v) for k, v in raw["env"].items()] + [
        (f"args/{i}", v) for i, v in enumerate(raw["args"])]
    for path, template in templates:
        for kind, sep, name in TEMPLATE_RE.findall(template):
            if kind == "option" and name not in raw["options"]:
                problems.append(f"{where}/{path}: unknown option {name!r}")
            elif kind == "connection" and connection is None:
                problems.append(f"{where}/{path}: refers to a connection the entry does not need")
            elif kind == "connection" and sep == "." and fields and name not in fields:
                problems.append(f"{where}/{path}: {connection['type']} connections have no field {name!r}")
            elif kind == "connection" and sep == ":" and name not in DERIVED_VALUES:
                problems.append(f"{where}/{path}: unknown derived value {name!r}")
            elif kind == "setting" and name not in SETTINGS:
                problems.append(f"{where}/{path}: unknown setting {name!r}")
    return problems


def load_catalog(path: Path = BUNDLED_PATH) -> dict[str, CatalogEntry]:
    """Parse and validate a catalog file; raises ``CatalogInvalid`` listing every problem."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogInvalid(f"{path}: cannot read the file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise CatalogInvalid(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}") from None
    problems = _schema_problems(document)
    if problems:
        raise CatalogInvalid(f"{path}: " + "; ".join(problems))
    entries: dict[str, CatalogEntry] = {}
    for index, raw in enumerate(document["entries"]):
        problems.extend(_rule_problems(raw, index))
        if raw["id"] in entries:
            problems.append(f"entries/{index}/id: duplicate id {raw['id']!r}")
        connection = raw["connection"] or {}
        entries[raw["id"]] = CatalogEntry(
            id=raw["id"], name=raw["name"], description=raw["description"], tags=tuple(raw["tags"]),
            capabilities=tuple(raw["capabilities"]), transport=raw["transport"], package=dict(raw["package"]),
            launch_command=raw["launch"]["command"], launch_args=tuple(raw["launch"]["args"]),
            launch_env=dict(raw["launch"]["env"]), connection_type=connection.get("type"),
            connection_dialect=connection.get("dialect"), env=dict(raw["env"]), args=tuple(raw["args"]),
            options={name: OptionSpec(name=name, type=o["type"], required=o["required"],
                                      description=o["description"], pattern=o.get("pattern"))
                     for name, o in raw["options"].items()},
        )
    if problems:
        raise CatalogInvalid(f"{path}: " + "; ".join(problems))
    return entries


@functools.lru_cache(maxsize=1)
def bundled_catalog() -> dict[str, CatalogEntry]:
    """The bundled entries by id, in file order. The system check has validated the file."""
    return load_catalog(BUNDLED_PATH)

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.types.base import ConnectionType, FieldSpec, hostname, port_number

DIALECTS = ("postgres", "mysql", "mariadb", "sqlite")
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "mariadb": 3306}


def _rules(values: Mapping[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    dialect = values.get("dialect")
    if dialect == "sqlite":
        for name in ("host", "port", "username", "password"):
            if values.get(name) not in (None, ""):
                errors.setdefault(name, []).append("is not used with the sqlite dialect")
    elif dialect in DIALECTS and not values.get("host"):
        errors.setdefault("host", []).append(f"is required for the {dialect} dialect")
    return errors


CONNECTION_TYPE = ConnectionType(
    name="database",
    label="Database",
    description="A PostgreSQL, MySQL, MariaDB or SQLite database.",
    fields=(
        FieldSpec("dialect", required=True, choices=DIALECTS),
        FieldSpec("host", validators=(hostname,), help="required unless sqlite"),
        FieldSpec("port", kind="integer", validators=(port_number,), help="default: the dialect's port"),
        FieldSpec("username"),
        FieldSpec("password", secret=True),
        FieldSpec("database", required=True, help="database name, or the file path for sqlite"),
    ),
    rules=_rules,
)

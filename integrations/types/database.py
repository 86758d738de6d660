from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from integrations.types.base import ConnectionType, FieldSpec, hostname, port_number
from integrations.types.probing import HealthResult, ProbeContext, healthy, unhealthy
from synthorg import egress
from synthorg.egress import ExternalServiceError
from synthorg.path_confinement import PathRefused, confine

DIALECTS = ("postgres", "mysql", "mariadb", "sqlite")
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "mariadb": 3306}


def _rules(values: Mapping[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    dialect = values.get("dialect")
    if dialect == "sqlite":
        for name in ("host", "port", "username", "password"):
            if values.get(name) not in (None, ""):
                errors.setdefault(name, []).append("is not used with the sqlite dialect")
        if values.get("database") is not None:
            try:
                # The file is opened by the health check and handed to the SQLite MCP server:
                # it stays under the allowed roots, never the service's own database (issue 12).
                confine(values["database"], kind="file")
            except PathRefused as exc:
                errors.setdefault("database", []).append(str(exc))
    elif dialect in DIALECTS and not values.get("host"):
        errors.setdefault("host", []).append(f"is required for the {dialect} dialect")
    return errors


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The driver's message, first line only (psycopg adds hints and context lines)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:limit]


def _select_one_postgres(context: ProbeContext, host: str, address: str, port: int) -> Any:
    import psycopg

    timeout_ms = int(context.timeout * 1000)
    # hostaddr: connect to the address we checked; host stays the name for TLS and for
    # the server's pg_hba matching. connect_timeout has a floor of 2 s in libpq.
    with psycopg.connect(host=host, hostaddr=address, port=port, dbname=str(context.values["database"]),
                         user=str(context.values.get("username") or "postgres"),
                         password=str(context.values.get("password") or ""),
                         connect_timeout=max(2, int(context.timeout)),
                         options=f"-c statement_timeout={timeout_ms}",
                         application_name="synthorg-health", autocommit=True) as conn:
        row = conn.execute("SELECT 1").fetchone()
    return row[0] if row else None


def _select_one_mysql(context: ProbeContext, address: str, port: int) -> Any:
    import pymysql

    seconds = max(1, int(context.timeout))
    conn = pymysql.connect(host=address, port=port, user=str(context.values.get("username") or "root"),
                           password=str(context.values.get("password") or ""),
                           database=str(context.values["database"]),
                           connect_timeout=seconds, read_timeout=seconds, write_timeout=seconds)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            row = cursor.fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def _select_one_sqlite(path: Path, context: ProbeContext) -> Any:
    # mode=ro: a check must never create an empty database file where one is missing.
    uri = f"file:{quote(str(path))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=context.timeout)
    try:
        row = conn.execute("SELECT 1").fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def _driver_errors(dialect: str) -> tuple[type[BaseException], ...]:
    if dialect == "postgres":
        import psycopg

        return (psycopg.Error, OSError)
    import pymysql

    return (pymysql.MySQLError, OSError)


def probe(context: ProbeContext) -> HealthResult:
    dialect = str(context.values["dialect"])
    if dialect == "sqlite":
        where = "sqlite database"
        try:
            # Checked before the file is touched, so the answer for a path outside the roots is
            # the same whether it exists or not (it once told whether /etc/shadow exists).
            path = confine(context.values.get("database"), kind="file")
        except PathRefused as exc:
            return unhealthy(f"{where}: not opened: the path {exc}")
        try:
            value = _select_one_sqlite(path, context)
        except sqlite3.Error as exc:
            return unhealthy(f"{where}: {_first_line(exc)}")
        return healthy(f"{where}: SELECT 1 ok") if value == 1 else unhealthy(f"{where}: SELECT 1 returned {value!r}")

    host = str(context.values["host"])
    port = int(context.values.get("port") or DEFAULT_PORTS[dialect])
    where = f"{dialect}://{egress.normalize_host(host)}:{port}"
    try:
        # Resolve once and check; the driver then connects to that address, never the name,
        # so a DNS answer that changes in between cannot redirect it (rebinding).
        address = egress.resolve_checked(host, port)[0]
    except ExternalServiceError as exc:
        return unhealthy(f"{where}: {exc}")
    failures = _driver_errors(dialect)
    try:
        if dialect == "postgres":
            value = _select_one_postgres(context, host, address, port)
        else:
            value = _select_one_mysql(context, address, port)
    except failures as exc:
        return unhealthy(f"{where}: {exc.__class__.__name__}: {_first_line(exc)}")
    if value != 1:
        return unhealthy(f"{where}: SELECT 1 returned {value!r}")
    return healthy(f"{where}: SELECT 1 ok")


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
        FieldSpec("database", required=True, help="database name, or for sqlite the absolute file path, under "
                  "integrations.mcp_catalog.allowed_roots"),
    ),
    rules=_rules,
    probe=probe,
    # `database` is the file of the sqlite dialect and the database the password opens elsewhere.
    destination_fields=("dialect", "host", "port", "database"),
)

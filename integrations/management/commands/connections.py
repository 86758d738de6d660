"""`manage.py connections list|show|create|update|delete`: the command-line twin of the connections API.

Secret fields are read from an interactive prompt (no echo) or from stdin (a JSON object or
`field=value` lines), never from the command line: argv is visible to every user of the
machine (`ps`) and lands in shell history.
"""
from __future__ import annotations

import getpass
import json
import sys
from typing import IO, Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.views.decorators.debug import sensitive_variables

from integrations import selectors, services
from integrations.models import Connection
from integrations.types import REGISTRY, ConnectionType, FieldSpec, get_type
from synthorg.errors import SynthorgError, ValidationFailed
from synthorg.public_url import webhook_url

ACTOR = "manage.py connections"


def _parse_field_value(spec: FieldSpec, raw: str) -> Any:
    """A `--field k=v` value in the kind the type declares (the service checks the rules)."""
    if spec.kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise CommandError(f"--field {spec.name}: must be an integer") from None
    if spec.kind == "boolean":
        lowered = raw.strip().lower()
        if lowered not in {"true", "false", "yes", "no", "1", "0"}:
            raise CommandError(f"--field {spec.name}: must be true or false")
        return lowered in {"true", "yes", "1"}
    if spec.kind == "list":
        return [item for item in raw.replace(",", " ").split() if item]
    if spec.kind == "mapping":
        try:
            value = json.loads(raw)
        except ValueError:
            raise CommandError(f"--field {spec.name}: must be a JSON object") from None
        return value
    return raw


@sensitive_variables()
def _read_secrets_from_stream(stream: IO[str], ctype: ConnectionType) -> dict[str, str]:
    """Secret fields from stdin: a JSON object, or `field=value` lines (blank lines and # comments skipped)."""
    text = stream.read()
    if not text.strip():
        return {}
    values: dict[str, Any]
    if text.lstrip().startswith("{"):
        try:
            values = json.loads(text)
        except ValueError:
            raise CommandError("stdin: not a valid JSON object of secret fields") from None
        if not isinstance(values, dict):
            raise CommandError("stdin: expected a JSON object of secret fields")
    else:
        values = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, separator, value = line.partition("=")
            if not separator:
                # The line may be a secret pasted by mistake: name the line, never echo it.
                raise CommandError(f"stdin line {number}: expected field=value")
            values[key.strip()] = value.rstrip("\r\n")
    unknown = sorted(set(values) - set(ctype.secret_field_names))
    if unknown:
        raise CommandError(f"stdin: {', '.join(unknown)} not secret field(s) of the {ctype.name} type "
                           f"(secret fields: {', '.join(ctype.secret_field_names) or 'none'}); "
                           "give non-secret fields with --field")
    return {k: v for k, v in values.items() if v not in (None, "")}


@sensitive_variables()
def _prompt_secrets(ctype: ConnectionType, prompt: Any) -> dict[str, str]:
    values: dict[str, str] = {}
    for spec in ctype.fields:
        if not spec.secret:
            continue
        suffix = " (required)" if spec.required else " (optional, Enter to skip)"
        value = prompt(f"{spec.name}{suffix}: ")
        if value:
            values[spec.name] = value
    return values


def _describe(connection: Connection) -> dict[str, Any]:
    """What `show` prints: the API's non-secret view (secret field *names* only)."""
    return {
        "name": connection.name,
        "connection_type": connection.connection_type,
        "config": connection.config,
        "secret_fields": list(connection.secret_fields),
        "secret_backend": connection.secret_backend,
        "rate_limit": {"requests_per_minute": connection.rate_limit_rpm, "burst": connection.rate_limit_burst,
                       "max_concurrent": connection.rate_limit_max_concurrent},
        "health_check": {"enabled": connection.health_check_enabled,
                         "interval_seconds": connection.health_check_interval_seconds},
        "health": {"status": connection.health_status,
                   "checked_at": connection.health_checked_at.isoformat() if connection.health_checked_at else None,
                   "last_error": connection.health_last_error},
        "metadata": connection.metadata,
        "webhook_url": webhook_url(connection.name),
        "created_at": connection.created_at.isoformat(),
        "updated_at": connection.updated_at.isoformat(),
    }


class Command(BaseCommand):
    help = ("List, show, create and delete connections. Secrets are read from a prompt or stdin "
            "(JSON object or field=value lines), never from the command line.")
    # Tests (and scripts calling call_command) hand in stdin as a stream.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True,
                                    metavar="{list,show,create,update,delete,check}")

        list_parser = sub.add_parser("list", help="one line per connection")
        list_parser.add_argument("--type", dest="connection_type", choices=sorted(REGISTRY),
                                 help="only connections of this type")
        list_parser.add_argument("--json", action="store_true", help="JSON instead of a table")

        show = sub.add_parser("show", help="one connection, without secret values")
        show.add_argument("name")

        create = sub.add_parser("create", help="create a connection (secrets from a prompt or stdin)")
        create.add_argument("name")
        create.add_argument("--type", dest="connection_type", required=True, choices=sorted(REGISTRY))
        create.add_argument("--field", action="append", default=[], metavar="FIELD=VALUE",
                            help="a non-secret field; repeat for more. Secret fields are refused here.")
        create.add_argument("--metadata", help="JSON object stored with the connection")
        create.add_argument("--no-input", action="store_true",
                            help="never prompt: read secrets from stdin even when it is a terminal")

        update = sub.add_parser("update", help="change fields of a connection (PATCH semantics); changing a "
                                "destination field (host, URL...) needs every stored secret again on stdin")
        update.add_argument("name")
        update.add_argument("--field", action="append", default=[], metavar="FIELD=VALUE",
                            help="a non-secret field to set; repeat for more. Secret fields are refused here.")
        update.add_argument("--unset", action="append", default=[], metavar="FIELD",
                            help="remove a field (a secret, or a non-secret back to its default)")
        update.add_argument("--metadata", help="JSON object replacing the stored metadata")
        update.add_argument("--no-input", action="store_true",
                            help="never prompt: read secrets from stdin even when it is a terminal")

        delete = sub.add_parser("delete", help="delete a connection with its secrets, tokens and deliveries")
        delete.add_argument("name")
        delete.add_argument("--force", action="store_true",
                            help="also remove dependants (MCP installations, provider configs) through their apps")

        check = sub.add_parser("check", help="run the connection's health check now (exit 1 if it fails)")
        check.add_argument("name")
        check.add_argument("--recent", action="store_true", help="accept a result from the fresh window")
        check.add_argument("--json", action="store_true", help="print the API's JSON body")

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        if subcommand == "check":
            # The same code as `manage.py connection_check`, which the health capability owns.
            call_command("connection_check", options["name"], recent=options["recent"], json=options["json"],
                         stdout=self.stdout, stderr=self.stderr)
            return
        try:
            if subcommand == "list":
                self._list(options.get("connection_type"), as_json=options["json"])
            elif subcommand == "show":
                self._show(options["name"])
            elif subcommand == "create":
                self._create(options)
            elif subcommand == "update":
                self._update(options)
            elif subcommand == "delete":
                self._delete(options["name"], force=options["force"])
        except ValidationFailed as exc:
            problems = "; ".join(f"{field}: {', '.join(rules)}" for field, rules in (exc.errors or {}).items())
            raise CommandError(problems or exc.detail) from None
        except services.SecretsRequired as exc:
            raise CommandError(f"{exc.detail} Pipe them on stdin (JSON object or field=value lines), or "
                               "answer the prompts.") from None
        except SynthorgError as exc:
            raise CommandError(exc.detail) from None

    def _list(self, connection_type: str | None, *, as_json: bool) -> None:
        connections = list(selectors.connection_list(connection_type=connection_type))
        if as_json:
            self.stdout.write(json.dumps([_describe(c) for c in connections], indent=2))
            return
        if not connections:
            self.stdout.write("No connections.")
            return
        rows = [("NAME", "TYPE", "HEALTH", "SECRETS SET", "UPDATED")]
        rows += [(c.name, c.connection_type, c.health_status, ",".join(c.secret_fields) or "-",
                  c.updated_at.strftime("%Y-%m-%d %H:%M:%S")) for c in connections]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

    def _show(self, name: str) -> None:
        self.stdout.write(json.dumps(_describe(selectors.connection_get(name)), indent=2))

    @sensitive_variables()
    def _update(self, options: dict[str, Any]) -> None:
        connection = selectors.connection_get(options["name"])
        ctype = get_type(connection.connection_type)
        credentials = _non_secret_fields(ctype, options["field"])
        for key in options["unset"]:
            if key not in ctype.field_map:
                raise CommandError(f"--unset {key}: not a field of the {ctype.name} type")
            credentials[key] = None
        data: dict[str, Any] = {}
        if options.get("metadata"):
            data["metadata"] = _metadata(options["metadata"])
        stream: IO[str] = options.get("stdin") or sys.stdin
        moved = services.destination_changes(ctype, connection.config, {**connection.config, **{
            k: v for k, v in credentials.items() if k not in ctype.secret_field_names}})
        if ctype.secret_field_names:
            if stream.isatty() and not options["no_input"]:
                # Prompt only when the secrets are needed (a destination moves), Enter skips one.
                if moved:
                    credentials.update(_prompt_secrets(ctype, getpass.getpass))
            else:
                credentials.update(_read_secrets_from_stream(stream, ctype))
        if credentials:
            data["credentials"] = credentials
        updated = services.connection_update(name=connection.name, data=data, actor=ACTOR)
        self.stdout.write(self.style.SUCCESS(
            f"Updated connection {updated.name!r} (secret fields set: {', '.join(updated.secret_fields) or 'none'})."))

    @sensitive_variables()
    def _create(self, options: dict[str, Any]) -> None:
        ctype = get_type(options["connection_type"])
        credentials = _non_secret_fields(ctype, options["field"])
        metadata: dict[str, Any] = {}
        if options.get("metadata"):
            metadata = _metadata(options["metadata"])

        stream: IO[str] = options.get("stdin") or sys.stdin
        if ctype.secret_field_names:
            if stream.isatty() and not options["no_input"]:
                credentials.update(_prompt_secrets(ctype, getpass.getpass))
            else:
                credentials.update(_read_secrets_from_stream(stream, ctype))
        connection = services.connection_create(name=options["name"], connection_type=ctype.name,
                                                credentials=credentials, metadata=metadata, actor=ACTOR)
        secrets_set = ", ".join(connection.secret_fields) or "none"
        self.stdout.write(self.style.SUCCESS(
            f"Created {connection.connection_type} connection {connection.name!r} (secret fields set: {secrets_set})."))

    def _delete(self, name: str, *, force: bool) -> None:
        connection = selectors.connection_get(name)
        services.connection_delete(name=connection.name, force=force, actor=ACTOR)
        self.stdout.write(self.style.SUCCESS(
            f"Deleted connection {connection.name!r} with its secrets, tokens and deliveries."))


def _metadata(raw: str) -> dict[str, Any]:
    try:
        metadata = json.loads(raw)
    except ValueError:
        raise CommandError("--metadata must be a JSON object") from None
    if not isinstance(metadata, dict):
        raise CommandError("--metadata must be a JSON object")
    return metadata


def _non_secret_fields(ctype: ConnectionType, items: list[str]) -> dict[str, Any]:
    """`--field k=v` options as the service takes them; a secret given here is refused unechoed."""
    credentials: dict[str, Any] = {}
    for item in items:
        key, separator, raw = item.partition("=")
        key = key.strip()
        if not separator or not key:
            raise CommandError(f"--field expects FIELD=VALUE, got {key or item[:20]!r}")
        spec = ctype.field_map.get(key)
        if spec is None:
            raise CommandError(f"--field {key}: not a field of the {ctype.name} type "
                               f"(fields: {', '.join(ctype.field_map)})")
        if spec.secret:
            # Refuse without echoing the value: it is already in the shell history, say so.
            raise CommandError(f"--field {key}: {key} is a secret field; secrets are never read from the "
                               "command line (they show in `ps` and shell history). Enter it at the prompt or "
                               "pipe it on stdin, and consider it exposed.")
        credentials[key] = _parse_field_value(spec, raw)
    return credentials

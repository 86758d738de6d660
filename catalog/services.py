"""Install, uninstall and verify catalog entries. The API, the admin and the commands call these."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from catalog import selectors
from catalog.entries import CatalogEntry
from catalog.install import merge_installed_servers
from catalog.launch import LaunchUnavailable, connection_path_problem, render_server
from catalog.models import Installation, VerifyJob
from catalog.verify import VerifyResult, verify_server
from integrations.selectors import connection_find
from synthorg.audit import audit_record
from synthorg.config import get_config
from synthorg.errors import ValidationFailed
from synthorg.path_confinement import PathRefused, confine

logger = logging.getLogger(__name__)


def _actor_name(actor: Any) -> str:
    if actor is None:
        return ""
    if isinstance(actor, str):
        return actor
    return actor.get_username() if getattr(actor, "is_authenticated", False) else ""


def _check_option(entry: CatalogEntry, name: str, value: Any) -> list[str]:
    spec = entry.options[name]
    if spec.type == "string":
        if not isinstance(value, str) or not value:
            return ["must be a non-empty string"]
        if spec.pattern and not re.fullmatch(spec.pattern, value):
            return [f"must match {spec.pattern}"]
        return []
    # Every path option, whatever the entry (issue 12: Memory's storage_file once accepted
    # ~/.ssh/authorized_keys), is confined to the allowed roots, symlinks resolved.
    if spec.type == "file_path":
        try:
            confine(value, kind="file")
        except PathRefused as exc:
            return [str(exc)]
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        return ["must be a non-empty list of absolute directory paths"]
    problems = []
    for item in value:
        try:
            confine(item, kind="directory")
        except PathRefused as exc:
            problems.append(f"{item!r} {exc}")
    return problems


def _validate(entry: CatalogEntry, connection_name: str | None, options: dict[str, Any]) -> Any:
    problems: dict[str, list[str]] = {}
    connection = None
    if entry.connection_type is None:
        if connection_name:
            problems["connection_name"] = [f"{entry.name} needs no connection"]
    elif not connection_name:
        need = entry.connection_type + (f" ({entry.connection_dialect})" if entry.connection_dialect else "")
        problems["connection_name"] = [f"is required: {entry.name} needs a {need} connection"]
    else:
        connection = connection_find(connection_name)
        if connection is None:
            problems["connection_name"] = [f"no connection named {connection_name!r}"]
        elif connection.connection_type != entry.connection_type:
            problems["connection_name"] = [
                f"{connection.name!r} is a {connection.connection_type} connection; {entry.name} needs "
                f"{entry.connection_type}"]
        elif entry.connection_dialect and connection.config.get("dialect") != entry.connection_dialect:
            problems["connection_name"] = [
                f"{connection.name!r} has dialect {connection.config.get('dialect')!r}; {entry.name} needs "
                f"{entry.connection_dialect}"]
        elif (path_problem := connection_path_problem(connection)) is not None:
            # A sqlite connection stored before the roots applied (or before they narrowed).
            problems["connection_name"] = [f"{connection.name!r}: its database file {path_problem}"]
    for name in options:
        if name not in entry.options:
            allowed = ", ".join(entry.options) or "none"
            problems[f"options.{name}"] = [f"unknown option (allowed for {entry.name}: {allowed})"]
    for name, spec in entry.options.items():
        if name in options and options[name] is not None:
            if found := _check_option(entry, name, options[name]):
                problems[f"options.{name}"] = found
        elif spec.required:
            problems[f"options.{name}"] = ["is required"]
    if problems:
        first, rules = next(iter(problems.items()))
        detail = f"{first}: {rules[0]}" if len(problems) == 1 else "The installation breaks validation rules."
        raise ValidationFailed(detail, code="invalid_installation", errors=problems)
    return connection


@dataclass(frozen=True)
class InstallOutcome:
    installation: Installation
    created: bool
    changed: bool


def installation_install(*, entry_id: str, connection_name: str | None = None,
                         options: dict[str, Any] | None = None, actor: Any = None,
                         request: HttpRequest | None = None) -> InstallOutcome:
    """Idempotent: the same arguments change nothing; different ones update the installation."""
    entry = selectors.catalog_entry_get(entry_id)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    connection = _validate(entry, connection_name, options)
    connection_id = connection.pk if connection else None
    for attempt in range(2):
        try:
            with transaction.atomic():
                current = Installation.objects.select_for_update().filter(entry_id=entry.id).first()
                if current is None:
                    installation = Installation.objects.create(
                        entry_id=entry.id, connection_id=connection_id, options=options,
                        installed_by=_actor_name(actor))
                    audit_record(action="mcp.install", target=entry.id, target_type="mcp_installation",
                                 actor=actor, request=request,
                                 details={"connection_name": connection.name if connection else None,
                                          "option_names": sorted(options)})
                    logger.info("MCP entry %s installed", entry.id)
                    return InstallOutcome(installation, created=True, changed=True)
                if current.connection_id == connection_id and current.options == options:
                    return InstallOutcome(current, created=False, changed=False)
                changed = [k for k, same in (("connection", current.connection_id == connection_id),
                                             ("options", current.options == options)) if not same]
                current.connection_id = connection_id
                current.options = options
                current.save(update_fields=["connection", "options", "updated_at"])
                audit_record(action="mcp.install", target=entry.id, target_type="mcp_installation",
                             actor=actor, request=request, details={"updated": changed})
                return InstallOutcome(current, created=False, changed=True)
        except IntegrityError:
            # A concurrent install of the same entry committed first (unique entry_id):
            # go round once more and compare with what it wrote.
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def installation_uninstall(*, entry_id: str, actor: Any = None, request: HttpRequest | None = None) -> bool:
    """Idempotent: True when something was removed, False when nothing was installed."""
    with transaction.atomic():
        deleted, _ = Installation.objects.filter(entry_id=entry_id).delete()
        if deleted:
            audit_record(action="mcp.uninstall", target=entry_id, target_type="mcp_installation",
                         actor=actor, request=request)
            logger.info("MCP entry %s uninstalled", entry_id)
    return bool(deleted)


def installations_for_connection(connection: Any) -> list[str]:
    return list(Installation.objects.filter(connection=connection).values_list("entry_id", flat=True))


def installations_remove_for_connection(connection: Any, *, actor: Any = None,
                                        request: HttpRequest | None = None) -> None:
    """The forced delete of a connection removes the installations that use it, each audited."""
    for entry_id in installations_for_connection(connection):
        installation_uninstall(entry_id=entry_id, actor=actor, request=request)


def installation_verify(*, entry_id: str) -> VerifyResult:
    """Launch the installed server as the effective configuration says, list its tools."""
    installation = selectors.installation_get(entry_id)
    config = get_config()
    timeout = config.integrations.mcp_catalog.verify_timeout_seconds
    yaml_server = next((s for s in config.mcp.servers if s.name == entry_id), None)
    if yaml_server is not None:
        # The YAML wins the name: that is the server a client would launch.
        return verify_server(yaml_server, timeout=timeout)
    entry = selectors.catalog_entry_get(installation.entry_id)
    try:
        rendered = render_server(entry, installation, config, materialise=True)
    except LaunchUnavailable as exc:
        return VerifyResult(ok=False, error=str(exc))
    return verify_server(rendered.server, timeout=timeout, secrets=rendered.secrets)


def verify_job_create(*, entry_id: str, actor: Any = None, request: HttpRequest | None = None) -> VerifyJob:
    """Record a job and hand it to a worker after commit; the caller polls the job."""
    from catalog.tasks import verify_job_run_task

    selectors.installation_get(entry_id)
    with transaction.atomic():
        job = VerifyJob.objects.create(entry_id=entry_id, requested_by=_actor_name(actor))
        audit_record(action="mcp.verify", target=entry_id, target_type="mcp_installation", actor=actor,
                     request=request, details={"job_id": str(job.pk)})
        transaction.on_commit(lambda: verify_job_run_task.delay(str(job.pk)))
    return job


def verify_job_run(*, job_id: str) -> VerifyJob | None:
    """Claim a queued job (conditional UPDATE: a redelivered task does nothing), run it, record."""
    claimed = VerifyJob.objects.filter(pk=job_id, status=VerifyJob.Status.QUEUED).update(
        status=VerifyJob.Status.RUNNING, started_at=timezone.now())
    if not claimed:
        return None
    job = VerifyJob.objects.get(pk=job_id)
    try:
        result = installation_verify(entry_id=job.entry_id)
    except Exception as exc:
        logger.exception("verify job %s failed", job_id)
        result = VerifyResult(ok=False, error=getattr(exc, "detail", None) or "verify failed unexpectedly")
    job.status = VerifyJob.Status.SUCCEEDED if result.ok else VerifyJob.Status.FAILED
    job.tools = result.tools
    job.error = result.error[:1000]
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "tools", "error", "finished_at"])
    return job


def mcp_config_materialise(*, actor: Any = None) -> Any:
    """The effective configuration with credentials, for a launcher; audited every time."""
    result = merge_installed_servers(materialise=True)
    audit_record(action="mcp.config.materialise", target="mcp", target_type="mcp_config", actor=actor or "cli",
                 details={"servers": [s.name for s in result.servers]})
    return result

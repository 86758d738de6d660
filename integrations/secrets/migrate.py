"""Moving every stored secret from one backend to another (`manage.py secrets_migrate`).

Unit by unit (a connection's credentials, an OAuth token, a previous signing secret): read the
source, write the target, read the target back and compare, and only then switch the database
reference, in one short transaction per unit with the row locked. A unit already at the target
is skipped, so a run killed half-way is finished by the next one, which changes nothing already
moved. Source copies in a secret manager are remembered (`MigratedSecretSource`, a reference) and
destroyed only with ``purge_source``, after a run without failures, including those a killed or
unflagged earlier run left (a Fernet source is replaced in place: the database keeps no old copy).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from integrations.models import Connection, MigratedSecretSource, SecretRecord
from integrations.secrets import fernet, managed
from integrations.secrets.base import SecretBackendUnavailable, SecretUnavailable
from synthorg.audit import audit_record
from synthorg.errors import ValidationFailed

logger = logging.getLogger(__name__)

TARGETS = ("encrypted_sqlite", *managed.MANAGED_BACKENDS)


@dataclass
class MigrationReport:
    target: str
    dry_run: bool
    moved: int = 0
    already: int = 0
    failed: int = 0
    purged: int = 0
    failures: list[str] = field(default_factory=list)


def _at(stored: str, target: str) -> bool:
    if managed.is_ref(stored):
        return managed.parse(stored).backend == target
    return target == "encrypted_sqlite"


def _copy(target: str, kind: str, owner_id: Any, values: dict[str, str]) -> tuple[str, str]:
    """Write ``values`` to the target and read them back; the new stored value and key id."""
    if target == "encrypted_sqlite":
        stored, key_id = fernet.encrypt(values)
        back = fernet.decrypt(stored)
    else:
        ref = managed.write(target, kind, owner_id, values)
        stored, key_id = str(ref), ""
        back = managed.read(ref, cached=False)
        # This path is live again (moved back here): it is no old copy to purge any more.
        MigratedSecretSource.objects.filter(backend=target, location=ref.location).delete()
    if back != values:
        raise SecretUnavailable(f"read-back of {kind}/{owner_id} differs from what was written",
                                code="secret_migrate_mismatch")
    return stored, key_id


def _units() -> list[tuple[str, Any, str, str | None, str]]:
    """(kind, model, field, key field, owner attribute) of everything that holds secrets."""
    units: list[tuple[str, Any, str, str | None, str]] = [
        (managed.CONNECTIONS, SecretRecord, "ciphertext", "key_id", "connection_id")]
    units += [(c.kind, c.model, c.field, c.key_field, c.owner_attr) for c in managed.columns()]
    return units


def secrets_migrate(*, to: str, dry_run: bool = False, batch_size: int = 100, purge_source: bool = False,
                    actor: Any = None) -> MigrationReport:
    if to not in TARGETS:
        raise ValidationFailed(f"--to must be one of {', '.join(TARGETS)}", code="invalid_target")
    report = MigrationReport(target=to, dry_run=dry_run)
    for kind, model, column, key_field, owner_attr in _units():
        last_pk: Any = None
        while True:
            rows = model.objects.exclude(**{column: ""}).order_by("pk")
            if last_pk is not None:
                rows = rows.filter(pk__gt=last_pk)
            batch = list(rows.values_list("pk", column, owner_attr)[:batch_size])
            if not batch:
                break
            last_pk = batch[-1][0]
            for pk, stored, owner in batch:
                if _at(stored, to):
                    report.already += 1
                    continue
                if dry_run:
                    report.moved += 1
                    continue
                _move_one(report, to, kind, model, column, key_field, pk, owner)
    if purge_source and not dry_run and not report.failed:
        # Every copy left behind by this run and by earlier runs (killed, or without the flag).
        for source in MigratedSecretSource.objects.order_by("pk"):
            if managed.destroy(managed.ManagedRef(source.backend, "", source.location), owner=source.owner,
                               actor=actor):
                report.purged += 1
            source.delete()  # a failed destroy is now a PendingSecretDeletion, retried on its own
    audit_record(action="secrets.migrate", target=to, target_type="secret_store", actor=actor,
                 outcome="success" if not report.failed else "failure",
                 reason="" if not report.failed else f"{report.failed} secrets could not be moved",
                 details={"dry_run": dry_run, "moved": report.moved, "already": report.already,
                          "failed": report.failed, "purged": report.purged, "purge_source": purge_source})
    return report


def _move_one(report: MigrationReport, to: str, kind: str, model: Any, column: str, key_field: str | None,
              pk: Any, owner: Any) -> None:
    label = f"{kind}/{owner}"
    try:
        with transaction.atomic():
            row = model.objects.select_for_update().filter(pk=pk).first()
            stored = getattr(row, column, "") if row is not None else ""
            if not stored or _at(stored, to):  # gone or moved meanwhile
                return
            values = managed.read(stored, cached=False) if managed.is_ref(stored) else fernet.decrypt(stored)
            new_stored, key_id = _copy(to, kind, owner, values)
            update = {column: new_stored, **({key_field: key_id} if key_field else {})}
            model.objects.filter(pk=pk).update(**update)
            if model is SecretRecord:
                Connection.objects.filter(pk=owner).update(secret_backend=to)
            if managed.is_ref(stored):  # the old copy stays until a run with --purge-source
                old = managed.parse(stored)
                MigratedSecretSource.objects.get_or_create(backend=old.backend, location=old.location,
                                                           defaults={"owner": label[:200]})
        from integrations.generation import connections_changed

        connections_changed()  # bulk updates send no signal; cached copies must re-read
    except (SecretBackendUnavailable, SecretUnavailable) as exc:
        report.failed += 1
        report.failures.append(f"{label}: {exc.code}")
        logger.warning("secrets_migrate: %s not moved (%s)", label, exc.code)
        return
    report.moved += 1

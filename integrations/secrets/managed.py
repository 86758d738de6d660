"""Secrets kept by an external secret manager (Vault/OpenBao, AWS Secrets Manager): references,
cached reads, writes, destruction, and the seal/unseal pair other apps use for their columns.

The database keeps a *reference* where it used to keep a Fernet token: the text
``ref:<backend>:<version>:<location>`` (``location`` a Vault path or an AWS ARN, last because an
ARN holds colons). A Fernet token always starts with ``gAAAAA``, so the two never mix up, and a
column or query that carried a ciphertext (the receiver's one query) carries the reference the
same way. A write makes a new version and so a new reference: a cached read, keyed by the whole
reference, is never served for a secret this service changed.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.secrets.base import SecretBackendUnavailable, SecretUnavailable
from synthorg.config import get_config
from synthorg.errors import Conflict

logger = logging.getLogger(__name__)

REF_PREFIX = "ref:"
VAULT = "secret_manager_vault"
AWS = "secret_manager_cloud_a"
MANAGED_BACKENDS = (VAULT, AWS)
# Owner kinds: the path segment under the prefix, one secret per owner object's immutable id.
CONNECTIONS = "connections"
OAUTH_TOKENS = "oauth-tokens"
WEBHOOK_ENDPOINTS = "webhook-endpoints"
PROVIDERS = "providers"
OAUTH_DEVICE_CODES = "oauth-device-codes"
OAUTH_STATES = "oauth-states"
NOTIFICATION_SINKS = "notification-sinks"
# Retry of a failed destroy: first after this, doubling up to a day.
DELETION_RETRY_SECONDS = 60


@dataclass(frozen=True)
class ManagedRef:
    backend: str
    version: str
    location: str

    def __str__(self) -> str:
        return f"{REF_PREFIX}{self.backend}:{self.version}:{self.location}"


def is_ref(stored: str | None) -> bool:
    return bool(stored) and stored.startswith(REF_PREFIX)  # type: ignore[union-attr]


def parse(stored: str) -> ManagedRef:
    try:
        _, backend, version, location = stored.split(":", 3)
    except ValueError:
        raise SecretUnavailable("A secret reference is malformed.", code="secret_missing") from None
    return ManagedRef(backend, version, location)


def configured_backend() -> str:
    return get_config().integrations.secret_backend.backend_type


# --- managers (one per process and configuration) --------------------------------------------

_managers: dict[tuple[str, Any], Any] = {}
_managers_lock = threading.Lock()


def manager(name: str) -> Any:
    """The client of backend ``name`` under the current configuration (logged in lazily)."""
    backend_cfg = get_config().integrations.secret_backend
    cfg = backend_cfg.vault if name == VAULT else backend_cfg.aws if name == AWS else None
    if cfg is None:
        raise KeyError(name)
    with _managers_lock:
        key = (name, cfg)
        found = _managers.get(key)
        if found is None:
            if name == VAULT:
                from integrations.secrets.vault import VaultManager

                found = VaultManager(cfg)
            else:
                from integrations.secrets.aws import AwsManager

                found = AwsManager(cfg)
            _managers[key] = found
        return found


def managers_reset() -> None:
    """Forget clients and cached reads (tests; a process that changed configuration)."""
    with _managers_lock:
        _managers.clear()
    cache_clear()


# --- cached reads -------------------------------------------------------------------------

_CACHE_MAX = 4096
_cache: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()
_cache_lock = threading.Lock()
# Reads that reached a secret manager, by backend (the bench counts them per delivery).
reads: Counter[str] = Counter()


def cache_clear() -> None:
    with _cache_lock:
        _cache.clear()


def _ttl(backend: str) -> int:
    cfg = get_config().integrations.secret_backend
    return (cfg.vault if backend == VAULT else cfg.aws).cache_ttl_seconds


def _cache_put(ref: ManagedRef, values: dict[str, str]) -> None:
    ttl = _ttl(ref.backend)
    if not ttl:
        return
    with _cache_lock:
        _cache[str(ref)] = (time.monotonic() + ttl, dict(values))
        _cache.move_to_end(str(ref))
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)


def read(ref: ManagedRef | str, *, cached: bool = True) -> dict[str, str]:
    """The fields of the secret version ``ref`` names; a fresh dict. Served from this process's
    cache for ``cache_ttl_seconds`` (the reference names one version, so it cannot be stale
    about this service's own writes). Raises SecretBackendUnavailable / SecretUnavailable."""
    ref = parse(ref) if isinstance(ref, str) else ref
    key = str(ref)
    if cached:
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                _cache.move_to_end(key)
                return dict(hit[1])
    try:
        found = manager(ref.backend)
    except KeyError:
        raise SecretUnavailable(f"Unknown secret backend {ref.backend!r}.", code="secret_missing") from None
    reads[ref.backend] += 1
    values = found.read(ref.location, ref.version)
    _cache_put(ref, values)
    return values


# --- writes ---------------------------------------------------------------------------------

def write(backend: str, kind: str, owner_id: Any, values: dict[str, str], *,
          previous: ManagedRef | None = None) -> ManagedRef:
    """Write ``values`` as a new version of the owner's secret and return its reference.

    ``previous``: the reference the caller read. Vault checks-and-sets on its version, so a
    writer that read an older version gets a 409 instead of overwriting another's change.
    Without one (a new owner, or one moving from another backend) a secret left at the same
    path by an interrupted earlier run is overwritten: the path belongs to this owner alone.
    """
    from integrations.secrets.vault import CheckAndSetFailed

    found = manager(backend)
    same = previous is not None and previous.backend == backend
    location = previous.location if same else found.location(kind, owner_id)  # type: ignore[union-attr]
    version = previous.version if same else None  # type: ignore[union-attr]
    try:
        location, new_version = found.write(location, dict(values), version=version)
    except CheckAndSetFailed:
        # The path moved past the version we read. Callers hold the owner's row lock, so no other
        # request of this service is writing it now: the newer version is one whose transaction
        # rolled back after its write (never referenced) or a write from outside the service.
        # Write over it once, still checked-and-set against what is there now; a writer racing
        # us within that window gets the 409.
        current = found.current_version(location)
        if version is not None:
            logger.warning("secret %s/%s: version %s is newer than the referenced %s (a rolled-back write or a "
                           "change outside this service); writing over it", kind, owner_id, current, version)
        try:
            location, new_version = found.write(location, dict(values), version=current)
        except CheckAndSetFailed:
            raise Conflict("The secret was changed by another request at the same time; send the change again.",
                           code="secret_changed_concurrently") from None
    ref = ManagedRef(backend, new_version, location)
    _cache_put(ref, values)
    return ref


# --- destruction ------------------------------------------------------------------------------

def destroy(ref: ManagedRef | str, *, owner: str, actor: Any = None) -> bool:
    """Destroy the owner's secret (every version); True if done. A failure is kept as a
    `PendingSecretDeletion` for the periodic retry. Audited either way."""
    from integrations.models import PendingSecretDeletion
    from synthorg.audit import audit_record

    ref = parse(ref) if isinstance(ref, str) else ref
    try:
        manager(ref.backend).destroy(ref.location)
    except (SecretBackendUnavailable, KeyError) as exc:
        detail = getattr(exc, "detail", str(exc))[:500]
        PendingSecretDeletion.objects.update_or_create(
            backend=ref.backend, location=ref.location,
            defaults={"owner": owner[:200], "last_error": detail,
                      "next_attempt_at": timezone.now() + timedelta(seconds=DELETION_RETRY_SECONDS)})
        audit_record(action="secret.destroy", target=owner, target_type="secret_store", actor=actor,
                     outcome="failure", reason="backend_unavailable",
                     details={"backend": ref.backend, "location": ref.location, "retry": True})
        logger.warning("secret of %s could not be destroyed now; retried later: %s", owner, detail)
        return False
    PendingSecretDeletion.objects.filter(backend=ref.backend, location=ref.location).delete()
    audit_record(action="secret.destroy", target=owner, target_type="secret_store", actor=actor,
                 details={"backend": ref.backend, "location": ref.location})
    return True


def destroy_after_commit(refs: list[tuple[str, str]], *, actor: Any = None) -> None:
    """Destroy these ``(stored reference, owner)`` once the transaction that dropped their rows
    commits: a rolled-back delete keeps its secret, a committed one never keeps a live secret
    without a row or a pending-deletion record."""
    refs = [(stored, owner) for stored, owner in refs if is_ref(stored)]
    if not refs:
        return

    def run() -> None:
        for stored, owner in refs:
            destroy(stored, owner=owner, actor=actor)

    transaction.on_commit(run)


def pending_deletions_retry(*, limit: int = 200) -> dict[str, int]:
    """The periodic task's work: destroy each due pending secret again (idempotent)."""
    from integrations.models import PendingSecretDeletion

    done = failed = 0
    due = list(PendingSecretDeletion.objects.filter(next_attempt_at__lte=timezone.now()).order_by("pk")[:limit])
    for row in due:
        if destroy(ManagedRef(row.backend, "", row.location), owner=row.owner, actor="secret-deletion-retry"):
            done += 1
            continue
        failed += 1
        attempts = row.attempts + 1
        delay = min(86_400, DELETION_RETRY_SECONDS * 2 ** min(attempts, 12))
        PendingSecretDeletion.objects.filter(pk=row.pk).update(
            attempts=attempts, next_attempt_at=timezone.now() + timedelta(seconds=delay))
    return {"destroyed": done, "failed": failed}


# --- seal / unseal: other apps' secret columns ------------------------------------------------

def seal(kind: str, owner_id: Any, values: dict[str, str], *, previous: str = "") -> tuple[str, str]:
    """What to store in a secret column: ``(reference, "")`` under a secret manager, else
    ``(Fernet token, key fingerprint)`` as before. ``previous``: what the column held (its
    version is the check-and-set base; one from another backend is destroyed after commit)."""
    backend = configured_backend()
    old = parse(previous) if is_ref(previous) else None
    if backend in MANAGED_BACKENDS:
        ref = write(backend, kind, owner_id, values, previous=old)
        if old is not None and old.backend != backend:
            destroy_after_commit([(previous, f"{kind}/{owner_id}")])
        return str(ref), ""
    from integrations.secrets import fernet

    if old is not None:
        destroy_after_commit([(previous, f"{kind}/{owner_id}")])
    return fernet.encrypt(values)


def unseal(stored: str) -> dict[str, str]:
    """The fields in a secret column: a reference is read (cached), a Fernet token decrypted."""
    if is_ref(stored):
        return read(stored)
    from integrations.secrets import fernet

    return fernet.decrypt(stored)


# --- the secret columns of other apps ---------------------------------------------------------

@dataclass(frozen=True)
class SealedColumn:
    """A column holding `seal` output: ``kind`` names its secrets, ``owner_attr`` the row
    attribute that is the owner id in their path, ``connection_field`` the FK to the connection
    whose delete destroys them (None: the owner outlives its connection, e.g. a notification sink
    whose FK is SET_NULL; its own delete destroys its secret)."""

    kind: str
    model: Any
    field: str
    key_field: str | None = None
    owner_attr: str = "pk"
    connection_field: str | None = "connection"


_columns: list[SealedColumn] = []


def register_column(column: SealedColumn) -> None:
    if column not in _columns:
        _columns.append(column)


def columns() -> list[SealedColumn]:
    return list(_columns)


def owned_refs(connection: Any) -> list[tuple[str, str]]:
    """``(reference, owner)`` of every secret-manager secret a connection's dependants hold."""
    found: list[tuple[str, str]] = []
    for column in _columns:
        if column.connection_field is None:
            continue
        rows = (column.model.objects.filter(**{column.connection_field: connection,
                                               f"{column.field}__startswith": REF_PREFIX})
                .values_list(column.field, column.owner_attr))
        found.extend((stored, f"{column.kind}/{owner}") for stored, owner in rows)
    return found

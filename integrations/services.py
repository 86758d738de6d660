"""Operations on connections and their secrets. The API, the admin and the commands call these.

Every write validates everything first, then changes rows, stores secrets and writes its
audit event in one transaction: a failure leaves no row and no orphan secret.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import logging
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db import connection as db_connection
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest

from integrations import dependants, selectors
from integrations.models import CONNECTION_NAME_PATTERN, RESERVED_NAMES, Connection, SecretRecord, SecretRef
from integrations.secrets import fernet, get_backend, managed
from integrations.secrets import rotation as secret_rotation
from integrations.secrets.base import SecretBackendUnavailable, SecretUnavailable
from integrations.secrets.fernet import key_check_reencrypt, key_fingerprint, keyring
from integrations.types import REGISTRY, ConnectionType, get_type
from integrations.validation import check_value, metadata_problems, validate_fields
from synthorg import events, permissions
from synthorg.audit import audit_record
from synthorg.config import get_config
from synthorg.errors import Conflict, LimitReached, NotFound, SynthorgError, ValidationFailed

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(CONNECTION_NAME_PATTERN)


def _fail(problems: Mapping[str, list[str]], detail: str = "The request breaks a validation rule.") -> None:
    if problems:
        first_field, first_rules = next(iter(problems.items()))
        raise ValidationFailed(f"{first_field}: {first_rules[0]}" if len(problems) == 1 and len(first_rules) == 1
                               else detail, errors={k: list(v) for k, v in problems.items()})


def _check_limits(rate_limit: Mapping[str, Any] | None, health_check: Mapping[str, Any] | None) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for key, value in (rate_limit or {}).items():
        if value is not None and not 0 <= value <= 1_000_000:
            problems[f"rate_limit.{key}"] = ["must be between 0 (unlimited) and 1000000"]
    interval = (health_check or {}).get("interval_seconds")
    if interval is not None and not 10 <= interval <= 86_400:
        problems["health_check.interval_seconds"] = [
            "must be between 10 and 86400 seconds, or null for the global interval"]
    return problems


def _check_name(name: str) -> dict[str, list[str]]:
    if not _NAME_RE.fullmatch(name):
        return {"name": ["must be 1-128 characters of letters, digits, '.', '_' and '-', starting with a letter "
                         "or digit"]}
    if name.lower() in RESERVED_NAMES:
        return {"name": [f"{name!r} is reserved (used as a sub-path of /api/v1/connections/)"]}
    return {}


def _connection_type(name: str) -> ConnectionType:
    try:
        return get_type(name)
    except KeyError:
        raise ValidationFailed(
            f"connection_type: unknown type {name!r} (types: {', '.join(REGISTRY)})",
            errors={"connection_type": [f"must be one of {', '.join(REGISTRY)}"]},
        ) from None


def _lock_type(connection_type: str) -> None:
    """Serialise creates of one type so the per-type limit holds under concurrency.

    PostgreSQL: a transaction-scoped advisory lock keyed by the type. SQLite: every write
    transaction already holds the database's single write lock (BEGIN IMMEDIATE).
    """
    if db_connection.vendor == "postgresql":
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                           [0x5359, zlib.crc32(connection_type.encode()) & 0x7FFFFFFF])


def _apply_rate_limit(connection: Connection, rate_limit: Mapping[str, int] | None) -> None:
    if rate_limit is None:
        return
    connection.rate_limit_rpm = rate_limit.get("requests_per_minute", connection.rate_limit_rpm)
    connection.rate_limit_burst = rate_limit.get("burst", connection.rate_limit_burst)
    connection.rate_limit_max_concurrent = rate_limit.get("max_concurrent", connection.rate_limit_max_concurrent)


def _apply_health_check(connection: Connection, health_check: Mapping[str, Any] | None) -> None:
    if health_check is None:
        return
    if "enabled" in health_check:
        connection.health_check_enabled = health_check["enabled"]
    if "interval_seconds" in health_check:
        connection.health_check_interval_seconds = health_check["interval_seconds"]


def _check_oauth_pkce(ctype: ConnectionType, config: Mapping[str, Any]) -> dict[str, list[str]]:
    if ctype.name == "oauth_app" and config.get("pkce") is False and get_config().integrations.oauth.pkce_required:
        return {"pkce": ["cannot be turned off while integrations.oauth.pkce_required is true"]}
    return {}


def _env_var_required_secrets(ctype: ConnectionType, name: str, backend: Any) -> tuple[list[str], dict[str, list[str]]]:
    """With the read-only env_var backend, secrets come from the environment: which are set?"""
    from integrations.secrets.env_var import variable_name

    present = backend.retrieve(connection=Connection(name=name), ref=SecretRef(backend.name, name),
                               fields=ctype.secret_field_names)
    problems = {
        spec.name: [f"is required: set {variable_name(name, spec.name)} in the service's environment"]
        for spec in ctype.fields if spec.secret and spec.required and spec.name not in present
    }
    return sorted(present), problems


class SecretBindingForbidden(SynthorgError):
    """Binding secrets the actor may not read to a destination the actor chose (403).

    Binding a secret to a destination is as strong as revealing it: whoever may do the one
    could do the other, so both need ``integrations.reveal_secret`` (issue 12).
    """

    status_code = 403
    code = "secret_binding_forbidden"


def acting_user(actor: Any, request: HttpRequest | None = None) -> Any:
    """The user to hold to the permission table, or None for trusted code.

    A command names itself with a string actor (the operator at the terminal, who can read the
    environment and the master key anyway) and internal callers pass nothing; a request's
    user counts even when the caller forgot to pass it as the actor.
    """
    if isinstance(actor, str):
        return None
    if actor is None and request is not None:
        return getattr(request, "user", None)
    return actor


def may_bind_secrets(actor: Any, request: HttpRequest | None = None) -> bool:
    user = acting_user(actor, request)
    return user is None or permissions.allowed(user, "connection.reveal_secret")


def _env_var_binding_check(ctype: ConnectionType, name: str, *, actor: Any, request: HttpRequest | None) -> None:
    """An env_var connection binds the variables named after it to its destination: refuse a
    user who may not reveal them when any is set (audited), so no `add_connection` holder can
    point the operator's secrets at a host of their own by naming a connection after them."""
    from integrations.secrets.env_var import variables_set

    found = variables_set(name, ctype.secret_field_names)
    if not found or may_bind_secrets(actor, request):
        return
    audit_record(action="connection.create", target=name if _NAME_RE.fullmatch(name) else ascii(name)[:255],
                 target_type="connection", actor=actor, request=request, outcome="denied",
                 reason="secret_binding_forbidden",
                 details={"connection_type": ctype.name, "secret_backend": "env_var", "variables": found})
    raise SecretBindingForbidden(
        f"The service's environment already holds secrets for a connection named {name!r} ({', '.join(found)}): "
        "creating it decides where they are sent, which needs the integrations.reveal_secret permission. "
        "Ask an operator who holds it, or choose another name.")


def _env_var_variables_shared(ctype: ConnectionType, name: str) -> None:
    """Two connections must not read one variable (names differing only in case or punctuation)."""
    from integrations.secrets.env_var import variables

    wanted = set(variables(name, ctype.secret_field_names).values())
    for other, other_type in Connection.objects.filter(secret_backend="env_var").values_list(  # noqa: S106
            "name", "connection_type"):
        fields = get_type(other_type).secret_field_names if other_type in REGISTRY else ()
        shared = sorted(wanted & set(variables(other, fields).values()))
        if shared:
            raise Conflict(f"Connection {other!r} already reads {', '.join(shared)} from the service's environment: "
                           f"a connection named {name!r} would share its secrets. Choose another name.",
                           code="env_var_variables_taken")


def connection_create(*, name: str, connection_type: str, credentials: Mapping[str, Any],
                      rate_limit: Mapping[str, int] | None = None, health_check: Mapping[str, Any] | None = None,
                      metadata: Mapping[str, Any] | None = None, expires_at: datetime | None = None,
                      actor: Any = None, request: HttpRequest | None = None) -> Connection:
    problems = {**_check_name(name), **_check_limits(rate_limit, health_check), **metadata_problems(metadata)}
    ctype = _connection_type(connection_type)
    backend = get_backend()
    if backend.read_only and backend.name == "env_var":
        secret_names = [f for f in credentials if f in ctype.secret_field_names and credentials[f] is not None]
        if secret_names:
            backend.store(connection=Connection(name=name), values=dict.fromkeys(secret_names, ""), ref=None)
        config, secrets, field_problems = validate_fields(
            _without_required_secrets(ctype), credentials)
        present, env_problems = _env_var_required_secrets(ctype, name, backend)
        field_problems = {**field_problems, **env_problems}
        if not _check_name(name):
            _env_var_binding_check(ctype, name, actor=actor, request=request)
    else:
        config, secrets, field_problems = validate_fields(ctype, credentials)
        present = sorted(secrets)
    problems = {**problems, **{f"credentials.{k}": v for k, v in field_problems.items()},
                **{f"credentials.{k}": v for k, v in _check_oauth_pkce(ctype, config).items()}}
    _fail(problems)

    limit = get_config().integrations.connections.max_connections_per_type
    stored_for: list[int] = []  # the id a secret manager's copy was written for, if one was
    try:
        with _no_orphan_secret(backend.name, stored_for), transaction.atomic():
            _lock_type(ctype.name)
            if Connection.objects.filter(connection_type=ctype.name).count() >= limit:
                raise LimitReached(
                    f"The limit of {limit} {ctype.name} connections is reached "
                    "(integrations.connections.max_connections_per_type).",
                    code="connection_limit_reached",
                )
            if selectors.connection_find(name) is not None:
                raise Conflict(f"A connection named {name!r} already exists.", code="connection_name_taken")
            if backend.name == "env_var":
                _env_var_variables_shared(ctype, name)
            connection = Connection(name=name, connection_type=ctype.name, config=config,
                                    secret_backend=backend.name, secret_fields=present,
                                    metadata=dict(metadata or {}), expires_at=expires_at)
            _apply_rate_limit(connection, rate_limit)
            _apply_health_check(connection, health_check)
            connection.save()
            if not backend.read_only:
                ref = backend.store(connection=connection, values=secrets, ref=None)
                stored_for.append(connection.pk)
                connection.secret_id = ref.secret_id
                connection.save(update_fields=["secret_id"])
            audit_record(action="connection.create", target=connection.name, target_type="connection",
                         actor=actor, request=request,
                         details={"connection_type": ctype.name, "secret_fields": present,
                                  "config_fields": sorted(config), "secret_backend": backend.name})
    except IntegrityError:
        # The case-insensitive unique constraint caught a concurrent create of the same name.
        raise Conflict(f"A connection named {name!r} already exists.", code="connection_name_taken") from None
    logger.info("connection %s created (type %s)", connection.pk, ctype.name)
    return connection


@contextlib.contextmanager
def _no_orphan_secret(backend: str, stored_for: list[int]) -> Iterator[None]:
    """A create whose transaction fails after its secret reached a secret manager destroys that
    copy (no row will ever reference it); best effort, a failure becomes a pending deletion."""
    try:
        yield
    except BaseException:
        if stored_for and backend in managed.MANAGED_BACKENDS:
            found = managed.manager(backend)
            location = found.location(managed.CONNECTIONS, stored_for[0])
            managed.destroy(managed.ManagedRef(backend, "", location), owner=f"{managed.CONNECTIONS}/{stored_for[0]}")
        raise


def _without_required_secrets(ctype: ConnectionType) -> ConnectionType:
    """The type with secret fields made optional (env_var checks them against the environment)."""
    return dataclasses.replace(ctype, fields=tuple(
        dataclasses.replace(f, required=False) if f.secret else f for f in ctype.fields))


# Decrypted secret sets of hot paths (the webhook receiver), keyed by the ciphertext itself and
# the keyring's fingerprints. Every update, signing-secret rotation and master-key re-encryption
# writes a new ciphertext, and a deleted record has none to look up, so an entry can never be
# served for a secret that changed or went away: there is no staleness bound to document, only a
# size bound (least recently used entries go first).
SECRET_CACHE_SIZE = 256
_secret_cache: OrderedDict[tuple[tuple[str, ...], str], dict[str, str]] = OrderedDict()
_secret_cache_lock = threading.Lock()


def secret_ciphertext_subquery(field: str = "secret_id") -> Subquery:
    """The ciphertext of the secret record named by ``field`` of the outer row, to annotate onto
    a connection query that runs anyway; pass it to ``connection_secrets(ciphertext=...)``."""
    return Subquery(SecretRecord.objects.filter(pk=OuterRef(field)).values("ciphertext")[:1])


def secret_decrypt_cached(ciphertext: str) -> dict[str, str]:
    """``fernet.decrypt`` with the per-process cache above; a fresh dict every call.

    The key includes the keyring's fingerprints, so a changed or removed master key is never
    bypassed by an entry decrypted under the old keyring. Raises SecretUnavailable like decrypt.
    """
    if managed.is_ref(ciphertext):
        # A secret-manager reference names one version: cached per process (cache_ttl_seconds).
        return managed.read(ciphertext)
    ring = keyring()
    key = (tuple(key_fingerprint(f) for f in (ring.current, *ring.previous)), ciphertext)
    with _secret_cache_lock:
        cached = _secret_cache.get(key)
        if cached is not None:
            _secret_cache.move_to_end(key)
            return dict(cached)
    values = fernet.decrypt(ciphertext, ring)
    with _secret_cache_lock:
        _secret_cache[key] = dict(values)
        while len(_secret_cache) > SECRET_CACHE_SIZE:
            _secret_cache.popitem(last=False)
    return values


def secret_cache_clear() -> None:
    with _secret_cache_lock:
        _secret_cache.clear()
    managed.cache_clear()


def connection_secrets(connection: Connection, *, ciphertext: str | None = None) -> dict[str, str]:
    """Every secret field of the connection, decrypted. Raises SecretUnavailable on failure.

    ``ciphertext``: the connection's secret record, read in the same query as the connection
    (annotate ``secret_ciphertext_subquery()``); it saves a query and the decryption is cached
    by ciphertext. None (no record, or not read) takes the backend's own path.
    """
    ctype = get_type(connection.connection_type)
    if connection.secret_backend == "env_var":  # noqa: S105 - a backend name
        backend = get_backend("env_var")
        return backend.retrieve(connection=connection, ref=SecretRef("env_var", connection.name),
                                fields=ctype.secret_field_names)
    if connection.secret_id is None:
        return {}
    try:
        if ciphertext is not None and (connection.secret_backend == fernet.EncryptedDatabaseBackend.name
                                       or managed.is_ref(ciphertext)):
            return secret_decrypt_cached(ciphertext)
        backend = get_backend(connection.secret_backend)
        return backend.retrieve(connection=connection, ref=connection.secret_ref, fields=ctype.secret_field_names)
    except SecretUnavailable as exc:
        # Name the connection, so an operator with many knows which one to repair.
        logger.warning("secrets of connection %s cannot be read: %s", connection.pk, exc.code)
        raise SecretUnavailable(f"Connection {connection.name!r}: {exc.detail}", code=exc.code) from None


def connection_credentials(connection: Connection) -> dict[str, Any]:
    """Config and secrets together, as a type's health check or client needs them."""
    return {**connection.config, **connection_secrets(connection)}


class SecretsRequired(Conflict):
    """A destination field changed without the secrets (409, ``fields`` names those needed)."""

    code = "secrets_required"

    def __init__(self, detail: str, *, fields: list[str], destination_fields: list[str]) -> None:
        super().__init__(detail)
        self.fields = fields
        self.destination_fields = destination_fields
        self.extra = {"fields": fields}


def destination_changes(ctype: ConnectionType, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The type's destination fields whose effective value (defaults applied) differs."""
    specs = ctype.field_map
    return [name for name in ctype.destination_fields or ()
            if before.get(name, specs[name].default) != after.get(name, specs[name].default)]


def secrets_missing_for_move(ctype: ConnectionType, *, held: Mapping[str, Any], credentials: Mapping[str, Any],
                             read_only: bool) -> list[str]:
    """The secret fields a destination change still needs: every secret the connection holds
    that the request neither gives again nor removes (null). A read-only backend (env_var)
    cannot take them from a request, so each one it holds is needed and the change is refused."""
    held_names = [f for f in ctype.secret_field_names if held.get(f)]
    if read_only:
        return held_names
    return [f for f in held_names if f not in credentials]


def _refuse_move(*, connection: Connection, moved: list[str], missing: list[str], read_only: bool) -> SecretsRequired:
    changed = ", ".join(moved)
    if read_only:
        detail = (f"Changing {changed} of {connection.name!r} needs its secrets again, and they come from the "
                  "service's environment (env_var backend): the operator deletes and re-creates the connection "
                  "with the new destination.")
    else:
        detail = (f"Changing {changed} decides where the secrets of {connection.name!r} are sent: give "
                  f"{', '.join(missing)} again in the same request.")
    return SecretsRequired(detail, fields=missing, destination_fields=moved)


def connection_update(*, name: str, data: Mapping[str, Any], actor: Any = None,
                      request: HttpRequest | None = None) -> Connection:
    """PATCH semantics: omitted keys unchanged; `credentials` merges field by field, null removes.

    Changing a destination field (the type's ``destination_fields``) needs every secret the
    connection holds in the same request, else ``SecretsRequired`` (409), nothing stored and
    the refused attempt audited: whoever may edit a connection must not be able to redirect a
    secret they do not know to a host of their choosing (issue 12).
    """
    try:
        return _connection_update(name=name, data=data, actor=actor, request=request)
    except SecretsRequired as exc:
        # Written after the update's transaction rolled back, so the refusal itself is kept.
        audit_record(action="connection.update", target=name, target_type="connection", actor=actor,
                     request=request, outcome="denied", reason="secrets_required",
                     details={"destination_fields": exc.destination_fields, "secrets_required": exc.fields})
        raise


def _connection_update(*, name: str, data: Mapping[str, Any], actor: Any,
                       request: HttpRequest | None) -> Connection:
    moved: list[str] = []
    with transaction.atomic():
        current = selectors.connection_get(name)
        connection = Connection.objects.select_for_update().get(pk=current.pk)
        ctype = get_type(connection.connection_type)
        problems: dict[str, list[str]] = {}
        if "name" in data and data["name"] != connection.name:
            problems["name"] = ["cannot change after creation (create a new connection instead)"]
        if "connection_type" in data and data["connection_type"] != connection.connection_type:
            problems["connection_type"] = ["cannot change after creation"]
        problems.update(_check_limits(data.get("rate_limit"), data.get("health_check")))
        problems.update(metadata_problems(data.get("metadata")))
        _fail(problems)

        changes: dict[str, Any] = {}
        credentials = data.get("credentials")
        new_secrets: dict[str, Any] | None = None
        if credentials:
            existing_secrets = connection_secrets(connection)
            backend = get_backend(connection.secret_backend)
            touched_secrets = [k for k in credentials if k in ctype.secret_field_names]
            if backend.read_only and touched_secrets:
                backend.store(connection=connection, values=dict.fromkeys(touched_secrets, ""), ref=None)
            merged = {**connection.config, **existing_secrets}
            for key, value in credentials.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            spec_ctype = _without_required_secrets(ctype) if backend.read_only else ctype
            config, secrets, field_problems = validate_fields(spec_ctype, merged)
            problems = {f"credentials.{k}": v for k, v in field_problems.items()}
            problems.update({f"credentials.{k}": v for k, v in _check_oauth_pkce(ctype, config).items()})
            _fail(problems)
            moved = destination_changes(ctype, connection.config, config)
            if moved:
                missing = secrets_missing_for_move(ctype, held=existing_secrets, credentials=credentials,
                                                   read_only=backend.read_only)
                if missing:
                    raise _refuse_move(connection=connection, moved=moved, missing=missing,
                                       read_only=backend.read_only)
                changes["destination_fields"] = moved
            if config != connection.config:
                changes["config_fields"] = sorted(set(config) ^ set(connection.config) | {
                    k for k in config if config.get(k) != connection.config.get(k)})
                connection.config = config
            if not backend.read_only and secrets != existing_secrets:
                new_secrets = secrets
                changes["secret_fields"] = sorted(k for k in set(secrets) | set(existing_secrets)
                                                  if secrets.get(k) != existing_secrets.get(k))
        for key, attr in (("requests_per_minute", "rate_limit_rpm"), ("burst", "rate_limit_burst"),
                          ("max_concurrent", "rate_limit_max_concurrent")):
            value = (data.get("rate_limit") or {}).get(key)
            if value is not None and value != getattr(connection, attr):
                setattr(connection, attr, value)
                changes.setdefault("rate_limit", []).append(key)
        health = data.get("health_check") or {}
        if "enabled" in health and health["enabled"] != connection.health_check_enabled:
            connection.health_check_enabled = health["enabled"]
            changes["health_check.enabled"] = health["enabled"]
        if "interval_seconds" in health and health["interval_seconds"] != connection.health_check_interval_seconds:
            connection.health_check_interval_seconds = health["interval_seconds"]
            changes["health_check.interval_seconds"] = health["interval_seconds"]
        if "metadata" in data and data["metadata"] != connection.metadata:
            connection.metadata = dict(data["metadata"])
            changes["metadata"] = True
        if "expires_at" in data and data["expires_at"] != connection.expires_at:
            # When the credential stops working; alerts warn ahead of it (issue 16).
            connection.expires_at = data["expires_at"]
            changes["expires_at"] = data["expires_at"].isoformat() if data["expires_at"] else None
        if not changes:
            return connection  # a no-op writes nothing
        if new_secrets is not None:
            backend = get_backend(connection.secret_backend)
            ref = backend.store(connection=connection, values=new_secrets, ref=connection.secret_ref)
            connection.secret_id = ref.secret_id
            connection.secret_fields = sorted(new_secrets)
        connection.save()
        if moved:
            # What other apps obtained for the old destination (OAuth tokens) does not follow.
            for hook in dependants.destination_change_hooks():
                hook(connection, changed=moved, actor=actor, request=request)
        audit_record(action="connection.update", target=connection.name, target_type="connection",
                     actor=actor, request=request, details={"changed": changes})
    return connection


def connection_delete(*, name: str, force: bool = False, actor: Any = None,
                      request: HttpRequest | None = None) -> None:
    connection = selectors.connection_get(name)
    blocking = {d.label: names for d in dependants.registered() if (names := d.list_names(connection))}
    if blocking and not force:
        listed = "; ".join(f"{label}: {', '.join(names)}" for label, names in blocking.items())
        raise Conflict(f"Connection {connection.name!r} is used by {listed}. Remove those first, "
                       "or delete with ?force=true to remove them too.", code="connection_has_dependants")
    with transaction.atomic():
        if force:
            for dependant in dependants.registered():
                if dependant.list_names(connection):
                    dependant.remove(connection, actor=actor, request=request)
        records = list(SecretRecord.objects.filter(connection=connection).values_list("ciphertext", flat=True))
        secret_records = len(records)
        # Secrets in a secret manager (its own and its dependants') are destroyed once the rows
        # are gone for good: after commit, a failure kept for the periodic retry (issue 14).
        managed.destroy_after_commit(
            [(stored, f"{managed.CONNECTIONS}/{connection.pk}") for stored in records]
            + managed.owned_refs(connection), actor=actor)
        audit_record(action="connection.delete", target=connection.name, target_type="connection",
                     actor=actor, request=request,
                     details={"connection_type": connection.connection_type, "forced": force,
                              "removed_dependants": {k: v for k, v in blocking.items()},
                              "secret_records": secret_records})
        # Alerts (issue 16): its open problems resolve in this transaction.
        events.emit(events.CONNECTION_DELETED, subject=f"connection:{connection.pk}", active=False,
                    connection_id=connection.pk, connection_type=connection.connection_type,
                    details={"connection": connection.name})
        # Secrets, tokens, states and deliveries go with it through ON DELETE CASCADE.
        connection.delete()


# --- scoped reveal ----------------------------------------------------------------------------

def reveal_fingerprint(value: str) -> str:
    """Salted HMAC of a revealed value: an auditor holding the value can confirm it; the log cannot leak it."""
    key = hashlib.sha256(("synthorg.reveal-fingerprint:" + settings.SECRET_KEY).encode()).digest()
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


class RevealDenied(NotFound):
    """The one uniform answer for every reveal failure: names nothing."""

    code = "not_found"
    default_detail = "Not found."


_FIELD_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def secret_reveal(*, name: str, field: str, user: Any, request: HttpRequest | None = None) -> str:
    # Whatever the URL held is recorded, but escaped: a NUL byte cannot go into PostgreSQL
    # text, and control characters have no place in an audit log.
    audit_name = name if _NAME_RE.match(name) else ascii(name)[:255]
    audit_field = field if _FIELD_RE.match(field) else ascii(field)[:100]

    def deny(reason: str, connection_name: str = audit_name) -> RevealDenied:
        audit_record(action="secret.reveal", target=connection_name, target_type="connection",
                     outcome="denied" if reason == "permission" else "failure", reason=reason,
                     actor=user, request=request, details={"field": audit_field})
        return RevealDenied()

    rate = get_config().integrations.connections.reveal_rate_per_minute
    if rate:
        # Per user, so one noisy client cannot lock others out; checked first so a throttled
        # caller learns nothing else. The refusal is an attempt too, so it is audited.
        from integrations.ratelimit import RateLimitExceeded, get_rate_limiter

        try:
            # burst = rate - 1: "N per minute" admits N at once, then refills at N per minute.
            get_rate_limiter().acquire(f"reveal:{user.pk}", rpm=rate, burst=rate - 1, wait=False)
        except RateLimitExceeded:
            audit_record(action="secret.reveal", target=audit_name, target_type="connection", outcome="denied",
                         reason="throttled", actor=user, request=request, details={"field": audit_field})
            raise
    if not permissions.allowed(user, "connection.reveal_secret"):
        raise deny("permission")
    connection = selectors.connection_find(name)
    if connection is None:
        raise deny("unknown_connection")
    ctype = get_type(connection.connection_type)
    if field not in ctype.secret_field_names:
        raise deny("not_a_secret_field", connection.name)
    try:
        value = connection_secrets(connection).get(field)
    except SecretBackendUnavailable:
        # The manager is down: a 503 with Retry-After (the caller retries), not a "not found".
        audit_record(action="secret.reveal", target=connection.name, target_type="connection", outcome="failure",
                     reason="secret_backend_unavailable", actor=user, request=request, details={"field": field})
        raise
    except SecretUnavailable as exc:
        logger.warning("reveal of connection %s failed: %s", connection.pk, exc.code)
        raise deny(f"backend_failure:{exc.code}", connection.name) from None
    if not value:
        raise deny("field_not_set", connection.name)
    audit_record(action="secret.reveal", target=connection.name, target_type="connection",
                 actor=user, request=request, details={"field": field, "value_fingerprint": reveal_fingerprint(value)})
    return value


# --- master key rotation ----------------------------------------------------------------------

@dataclass
class RotationReport:
    rotated: int = 0
    already_current: int = 0
    failed: int = 0


def master_key_rotate(*, actor: Any = None, batch_size: int = 200) -> RotationReport:
    """Re-encrypt every secret under the current key: idempotent, resumable, batch by batch."""
    ring = keyring()
    current = key_fingerprint(ring.current)
    report = RotationReport()
    report.already_current = SecretRecord.objects.filter(key_id=current).count()
    failed_ids: set[Any] = set()
    while True:
        with transaction.atomic():
            batch = list(SecretRecord.objects.select_for_update()
                         .exclude(key_id=current).exclude(pk__in=failed_ids)
                         .exclude(ciphertext__startswith=managed.REF_PREFIX).order_by("pk")[:batch_size])
            if not batch:
                break
            for record in batch:
                try:
                    record.ciphertext = ring.multi.rotate(record.ciphertext.encode("ascii")).decode("ascii")
                except (InvalidToken, UnicodeError):  # wrong key or corrupt row: count it, keep going
                    logger.warning("secret record %s cannot be decrypted by any key; left as is", record.pk)
                    failed_ids.add(record.pk)
                    report.failed += 1
                    continue
                record.key_id = current
                record.save(update_fields=["ciphertext", "key_id", "updated_at"])
                report.rotated += 1
    # Ciphertexts kept by other apps (providers, OAuth tokens, webhook secrets) go too.
    by_owner = {"connections": {"rotated": report.rotated, "already_current": report.already_current,
                                "failed": report.failed}}
    for owner, counts in secret_rotation.run_all(actor=actor).items():
        by_owner[owner] = {"rotated": counts.rotated, "already_current": counts.already_current,
                           "failed": counts.failed}
        report.rotated += counts.rotated
        report.already_current += counts.already_current
        report.failed += counts.failed
    if not report.failed:
        # Only when nothing is left under an old key may the key check move to the new one.
        key_check_reencrypt(ring)
    audit_record(action="master_key.rotate", target="secrets", target_type="secret_store", actor=actor,
                 outcome="success" if not report.failed else "failure",
                 reason="" if not report.failed else f"{report.failed} records could not be decrypted",
                 details={"rotated": report.rotated, "already_current": report.already_current,
                          "failed": report.failed, "key_id": current, "by_owner": by_owner})
    return report


def credential_field_check(connection_type: str, field: str, value: Any) -> list[str]:
    """One field's problems (the admin form validates field by field with this)."""
    spec = get_type(connection_type).field_map.get(field)
    return ["unknown field"] if spec is None else check_value(spec, value)

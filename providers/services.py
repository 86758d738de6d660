"""Operations on provider configs, and run-time credential resolution. The API, admin and hooks call these.

Every write validates everything first (422 naming the field and the rule), then writes the
row and its audit event in one transaction. Embedded credentials are DEPRECATED: they are
stored as Fernet ciphertext only, still resolve with a `DeprecationWarning`, and cannot be
combined with a connection reference (the connection supplies the credentials).
"""
from __future__ import annotations

import dataclasses
import logging
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from integrations import selectors as connection_selectors
from integrations import services as connection_services
from integrations.secrets import managed
from integrations.secrets.base import SecretUnavailable
from integrations.secrets.fernet import key_fingerprint, keyring
from integrations.types.base import https_url_unless_loopback
from integrations.validation import SECRET_MAX_CHARS, VALUE_MAX_CHARS
from providers import destination, selectors
from providers.models import (
    EMBEDDED_FIELDS,
    EMBEDDED_SECRET_FIELDS,
    PROVIDER_NAME_PATTERN,
    ProviderConfig,
)
from synthorg.audit import audit_record
from synthorg.errors import Conflict, SynthorgError, ValidationFailed

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(PROVIDER_NAME_PATTERN)

# Connection types that carry a credential a provider can send, and which fields hold it.
USABLE_CONNECTION_TYPES = ("generic_http", "github", "slack", "oauth_app")
_PLAIN_FIELDS = ("driver", "base_url", "model")


class ProviderCredentialsUnavailable(SynthorgError):
    """A provider's credentials cannot be resolved right now; `code` says why, the message how to fix it."""

    status_code = 503
    code = "provider_credentials_unavailable"


@dataclass(frozen=True)
class ResolvedCredentials:
    """What a provider client sends: `bearer` → `Authorization: Bearer <value>`; `api_key` → the driver's key header.

    `source` is `connection:<name>` or `embedded:api_key` (deprecated). `value` is kept out of
    `repr()` so a logged or traced object never carries it.
    """

    kind: Literal["api_key", "bearer"]
    value: str = field(repr=False)
    source: str
    # Where to send it (issue 12): the provider's base_url, else its connection's own URL; empty
    # means the driver's default host. A consumer sends the value nowhere else.
    base_url: str = ""

    @property
    def deprecated(self) -> bool:
        return self.source.startswith("embedded")


# --- validation -------------------------------------------------------------------------------

def _check_url(value: Any, validator: Any) -> list[str]:
    if value in (None, ""):
        return []
    try:
        validator(value)
    except ValueError as exc:
        return [str(exc)]
    return []


def _check_plain(data: Mapping[str, Any]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if "name" in data and not _NAME_RE.fullmatch(data["name"]):
        problems["name"] = ["must be 1-128 characters of letters, digits, '.', '_' and '-', starting with a letter "
                            "or digit"]
    if "driver" in data and data["driver"] not in ProviderConfig.Driver.values:
        problems["driver"] = [f"must be one of {', '.join(ProviderConfig.Driver.values)}"]
    # The provider's API key goes to base_url: https, plain http only to loopback (issue 12 §2).
    if base_url_problems := _check_url(data.get("base_url"), https_url_unless_loopback):
        problems["base_url"] = base_url_problems
    if len(data.get("base_url") or "") > 2048:
        problems.setdefault("base_url", []).append("must be at most 2048 characters")
    if len(data.get("model") or "") > 256:
        problems["model"] = ["must be at most 256 characters"]
    return problems


def _check_embedded(values: Mapping[str, Any]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for name in (*EMBEDDED_SECRET_FIELDS, "oauth_client_id"):
        value = values.get(name)
        limit = VALUE_MAX_CHARS if name == "oauth_client_id" else SECRET_MAX_CHARS
        if value is not None and not value:
            problems[name] = ["must not be empty (send null to remove it)"]
        elif value is not None and len(value) > limit:
            problems[name] = [f"must be at most {limit} characters"]
    if token_url_problems := _check_url(values.get("oauth_token_url"), https_url_unless_loopback):
        problems["oauth_token_url"] = token_url_problems
    oauth_set = [f for f in ("oauth_client_id", "oauth_client_secret", "oauth_token_url") if values.get(f)]
    if oauth_set and len(oauth_set) < 3:
        missing = sorted({"oauth_client_id", "oauth_client_secret", "oauth_token_url"} - set(oauth_set))
        for name in missing:
            problems.setdefault(name, []).append(
                "is required when any embedded OAuth field is set (oauth_client_id, oauth_client_secret, "
                "oauth_token_url go together)")
    return problems


def _resolve_connection(connection_name: str | None) -> tuple[Any, dict[str, list[str]]]:
    if connection_name is None:
        return None, {}
    connection = connection_selectors.connection_find(connection_name)
    if connection is None:
        return None, {"connection_name": [f"no connection named {connection_name!r} exists"]}
    if connection.connection_type not in USABLE_CONNECTION_TYPES:
        return None, {"connection_name": [
            f"a {connection.connection_type} connection carries no API credential a provider can use "
            f"(usable types: {', '.join(USABLE_CONNECTION_TYPES)})"]}
    return connection, {}


def _check_exclusive(connection: Any, embedded: Mapping[str, Any]) -> dict[str, list[str]]:
    if connection is None:
        return {}
    return {name: ["cannot be set together with connection_name: the connection supplies the credentials "
                   "(send null to remove the deprecated embedded value)"]
            for name in EMBEDDED_FIELDS if embedded.get(name) is not None}


def _fail(problems: Mapping[str, list[str]]) -> None:
    if not problems:
        return
    first_field, first_rules = next(iter(problems.items()))
    detail = (f"{first_field}: {first_rules[0]}" if len(problems) == 1 and len(first_rules) == 1
              else "The request breaks validation rules; see `errors` for each field.")
    raise ValidationFailed(detail, errors={k: list(v) for k, v in problems.items()})


def _seal(provider: ProviderConfig, embedded: Mapping[str, Any]) -> None:
    """Through the configured secret backend (issue 14): a Fernet token, or under a secret manager
    a reference to ``<prefix>/providers/<provider id>`` (so the provider must be saved first)."""
    present = {k: v for k, v in embedded.items() if v is not None}
    previous = provider.embedded_ciphertext
    if present:
        provider.embedded_ciphertext, provider.embedded_key_id = managed.seal(
            managed.PROVIDERS, provider.pk, dict(present), previous=previous)
    else:
        managed.destroy_after_commit([(previous, f"{managed.PROVIDERS}/{provider.pk}")])
        provider.embedded_ciphertext, provider.embedded_key_id = "", ""
    provider.embedded_fields = sorted(present)


def provider_embedded_credentials(provider: ProviderConfig) -> dict[str, Any]:
    """The deprecated embedded fields, decrypted. Raises SecretUnavailable if the ciphertext is unreadable."""
    if not provider.embedded_ciphertext:
        return {}
    return managed.unseal(provider.embedded_ciphertext)


# --- writes -----------------------------------------------------------------------------------

def provider_create(*, name: str, driver: str, base_url: str = "", model: str = "",
                    connection_name: str | None = None, actor: Any = None, request: HttpRequest | None = None,
                    **embedded: Any) -> ProviderConfig:
    """Create a provider. `embedded` takes the DEPRECATED fields in EMBEDDED_FIELDS (None = unset)."""
    unknown = sorted(set(embedded) - set(EMBEDDED_FIELDS))
    if unknown:
        raise TypeError(f"unknown provider fields: {', '.join(unknown)}")
    problems = _check_plain({"name": name, "driver": driver, "base_url": base_url, "model": model})
    problems.update(_check_embedded(embedded))
    connection, connection_problems = _resolve_connection(connection_name)
    problems.update(connection_problems)
    problems.update(_check_exclusive(connection, embedded))
    _fail(problems)
    try:
        approved = destination.require_binding(provider=name, connection=connection, base_url=base_url or "",
                                               actor=actor, request=request)
    except destination.ProviderBindingForbidden as exc:
        destination.record_refusal(exc, action="provider.create", actor=actor, request=request)
        raise

    provider = ProviderConfig(name=name, driver=driver, base_url=base_url or "", model=model or "",
                              connection=connection, binding_approved=approved)
    try:
        with transaction.atomic():
            if selectors.provider_find(name) is not None:
                raise Conflict(f"A provider named {name!r} already exists.", code="provider_name_taken")
            provider.save()
            if any(v is not None for v in embedded.values()):
                _seal(provider, embedded)  # after the save: a secret manager keys it by the provider's id
                provider.save(update_fields=["embedded_ciphertext", "embedded_key_id", "embedded_fields"])
            audit_record(action="provider.create", target=provider.name, target_type="provider",
                         actor=actor, request=request,
                         details={"driver": driver, "connection_name": connection.name if connection else None,
                                  "embedded_fields": provider.embedded_fields})
    except IntegrityError:
        # The case-insensitive unique constraint caught a concurrent create of the same name.
        raise Conflict(f"A provider named {name!r} already exists.", code="provider_name_taken") from None
    if provider.embedded_fields:
        logger.warning("provider %s created with deprecated embedded credentials; reference a connection instead",
                       provider.pk)
    return provider


def provider_update(*, name: str, data: Mapping[str, Any], actor: Any = None,
                    request: HttpRequest | None = None) -> ProviderConfig:
    """PATCH semantics: omitted keys unchanged; an embedded field or connection_name set to null is removed.

    A no-op writes nothing (no row update, no audit event). Linking a connection, or moving a
    linked provider's base_url, outside the connection's own URL needs the reveal permission
    (`providers.destination`): 403, nothing stored, the refusal audited.
    """
    try:
        return _provider_update(name=name, data=data, actor=actor, request=request)
    except destination.ProviderBindingForbidden as exc:
        # Written after the update's transaction rolled back, so the refusal itself is kept.
        destination.record_refusal(exc, action="provider.update", actor=actor, request=request)
        raise


def _provider_update(*, name: str, data: Mapping[str, Any], actor: Any,
                     request: HttpRequest | None) -> ProviderConfig:
    with transaction.atomic():
        current = selectors.provider_get(name)
        provider = ProviderConfig.objects.select_for_update().get(pk=current.pk)
        problems: dict[str, list[str]] = {}
        if "name" in data and data["name"] != provider.name:
            problems["name"] = ["cannot change after creation (create a new provider instead)"]
        plain = {k: data[k] for k in _PLAIN_FIELDS if k in data}
        for key in ("driver",):
            if key in plain and plain[key] is None:
                problems[key] = ["must not be null"]
        problems.update(_check_plain({k: v for k, v in plain.items() if v is not None}))

        connection = provider.connection
        if "connection_name" in data:
            connection, connection_problems = _resolve_connection(data["connection_name"])
            problems.update(connection_problems)

        touched = {k: data[k] for k in EMBEDDED_FIELDS if k in data}
        existing = provider_embedded_credentials(provider) if provider.embedded_ciphertext else {}
        merged = {**existing, **touched}
        merged = {k: v for k, v in merged.items() if v is not None}
        problems.update(_check_embedded(merged))
        problems.update(_check_exclusive(connection, merged))
        _fail(problems)
        base_url = (plain.get("base_url") or "") if "base_url" in plain else provider.base_url
        approved = provider.binding_approved and connection is not None
        if connection is not None and (connection.pk != provider.connection_id or base_url != provider.base_url):
            approved = destination.require_binding(provider=provider.name, connection=connection,
                                                   base_url=base_url, actor=actor, request=request)
        elif connection is None and base_url != provider.base_url:
            # The provider's own key goes to base_url: moving it without giving the key again
            # chooses where a secret the actor cannot read is sent (as a connection's move, 409 there).
            kept = [k for k in EMBEDDED_SECRET_FIELDS if existing.get(k) and k not in touched]
            if kept and not connection_services.may_bind_secrets(actor, request):
                raise destination.ProviderBindingForbidden(
                    f"Provider {provider.name!r} sends its own {', '.join(kept)} to base_url: moving it needs "
                    f"{', '.join(kept)} given again, or the integrations.reveal_secret permission.",
                    provider=provider.name, connection="", base_url=base_url)
        elif connection is not None and ("base_url" in data or "connection_name" in data):
            # Saved again as it stands (the admin form sends every field): a holder of the
            # permission approves a binding that lapsed; anyone else leaves it as it was.
            approved = approved or destination.approves_as_is(connection=connection, base_url=base_url,
                                                              actor=actor, request=request)

        changes: dict[str, Any] = {}
        for key, value in plain.items():
            value = value or ""
            if value != getattr(provider, key):
                setattr(provider, key, value)
                changes[key] = value
        if (connection.pk if connection else None) != provider.connection_id:
            provider.connection = connection
            changes["connection_name"] = connection.name if connection else None
        if approved != provider.binding_approved:
            provider.binding_approved = approved
            changes["binding_approved"] = approved
        if merged != existing:
            changes["embedded_fields"] = sorted(k for k in set(merged) | set(existing)
                                                if merged.get(k) != existing.get(k))
            _seal(provider, merged)
        if not changes:
            return provider
        provider.save()
        audit_record(action="provider.update", target=provider.name, target_type="provider",
                     actor=actor, request=request, details={"changed": sorted(changes),
                                                            "connection_name": changes.get("connection_name"),
                                                            "embedded_fields": provider.embedded_fields})
    return provider


def provider_delete(*, name: str, actor: Any = None, request: HttpRequest | None = None,
                    reason: str = "") -> None:
    with transaction.atomic():
        provider = selectors.provider_get(name)
        audit_record(action="provider.delete", target=provider.name, target_type="provider",
                     actor=actor, request=request, reason=reason,
                     details={"driver": provider.driver,
                              "connection_name": provider.connection.name if provider.connection else None})
        managed.destroy_after_commit([(provider.embedded_ciphertext, f"{managed.PROVIDERS}/{provider.pk}")],
                                     actor=actor)
        provider.delete()


def provider_remove_for_connection(connection: Any, *, actor: Any = None, request: HttpRequest | None = None) -> None:
    """The dependants hook's `remove`: delete (not detach) every provider that references `connection`.

    Deleting matches the issue's "?force=true removes those dependants"; a detached provider
    would be left with no credentials and fail at its next use, far from the forced delete
    that caused it. Each removal is its own audited `provider.delete`.
    """
    for provider_name in selectors.provider_names_for_connection(connection):
        provider_delete(name=provider_name, actor=actor, request=request,
                        reason=f"connection {connection.name!r} deleted with force")


# --- run-time credentials ---------------------------------------------------------------------

def _from_connection(provider: ProviderConfig) -> ResolvedCredentials:
    try:
        connection = provider.connection
    except ObjectDoesNotExist:  # deleted under a stale in-memory provider
        connection = None
    if connection is None:
        raise ProviderCredentialsUnavailable(
            f"Provider {provider.name!r} references a connection that no longer exists; "
            "set connection_name to an existing connection.", code="provider_connection_missing")
    source = f"connection:{connection.name}"
    ctype = connection.connection_type
    if ctype not in USABLE_CONNECTION_TYPES:
        raise ProviderCredentialsUnavailable(
            f"Provider {provider.name!r} references the {ctype} connection {connection.name!r}, which carries no "
            f"API credential (usable types: {', '.join(USABLE_CONNECTION_TYPES)}).",
            code="provider_connection_unusable")
    if not destination.sends_only_where_bound(provider, connection):
        # Outside the connection's URL and not (or no longer) approved: never hand the key out for it.
        raise ProviderCredentialsUnavailable(
            f"Provider {provider.name!r} would send the credential of connection {connection.name!r} to "
            f"{provider.base_url}, outside the connection's own URL, and no holder of integrations.reveal_secret "
            "has approved that since the connection last moved: clear base_url or set one under the connection's "
            "URL, or have the provider saved again by a user with that permission.",
            code="provider_destination_unapproved")
    if ctype == "oauth_app":
        return ResolvedCredentials(kind="bearer", value=_oauth_access_token(provider, connection), source=source)
    try:
        secrets = connection_services.connection_secrets(connection)
    except SecretUnavailable as exc:
        raise ProviderCredentialsUnavailable(
            f"The secrets of connection {connection.name!r} (used by provider {provider.name!r}) cannot be read "
            f"({exc.code}).", code="provider_connection_secrets_unreadable") from None
    if secrets.get("token"):
        return ResolvedCredentials(kind="bearer", value=secrets["token"], source=source)
    if ctype == "generic_http" and secrets.get("api_key"):
        return ResolvedCredentials(kind="api_key", value=secrets["api_key"], source=source)
    wanted = "token or api_key" if ctype == "generic_http" else "token"
    raise ProviderCredentialsUnavailable(
        f"Connection {connection.name!r} (used by provider {provider.name!r}) has no {wanted} set.",
        code="provider_connection_no_credential")


def _oauth_access_token(provider: ProviderConfig, connection: Any) -> str:
    # Imported lazily: oauthflow is optional for every other connection type and imports integrations.
    try:
        from oauthflow.services import get_access_token
    except ImportError:
        raise ProviderCredentialsUnavailable(
            f"Provider {provider.name!r} uses the oauth_app connection {connection.name!r}, but OAuth token "
            "management (oauthflow.services.get_access_token) is not available in this build.",
            code="provider_oauth_unavailable") from None
    try:
        token = get_access_token(connection)
    except SynthorgError as exc:
        raise ProviderCredentialsUnavailable(
            f"The oauth_app connection {connection.name!r} (used by provider {provider.name!r}) has no usable "
            f"access token ({exc.code}); connect or re-authorize it.", code="provider_oauth_token_unavailable",
        ) from None
    value = token if isinstance(token, str) else getattr(token, "access_token", None)
    if not value:
        raise ProviderCredentialsUnavailable(
            f"The oauth_app connection {connection.name!r} (used by provider {provider.name!r}) has no access "
            "token yet; connect it first.", code="provider_oauth_token_unavailable")
    return str(value)


def _from_embedded(provider: ProviderConfig) -> ResolvedCredentials:
    try:
        embedded = provider_embedded_credentials(provider)
    except SecretUnavailable as exc:
        raise ProviderCredentialsUnavailable(
            f"The embedded credentials of provider {provider.name!r} cannot be decrypted ({exc.code}).",
            code="provider_embedded_unreadable") from None
    if embedded.get("api_key"):
        warnings.warn(
            f"Provider {provider.name!r} uses an embedded api_key, which is deprecated: create a connection "
            "holding the key and set the provider's connection_name.", DeprecationWarning, stacklevel=3)
        logger.warning("provider %s resolved deprecated embedded credentials", provider.pk)
        return ResolvedCredentials(kind="api_key", value=embedded["api_key"], source="embedded:api_key")
    raise ProviderCredentialsUnavailable(
        f"Provider {provider.name!r} has only embedded OAuth client fields, which are no longer exchanged for "
        "tokens here: create an oauth_app connection from them and set connection_name.",
        code="provider_embedded_oauth_unsupported")


def _over_tls(provider: ProviderConfig, resolved: ResolvedCredentials) -> ResolvedCredentials:
    """Refuse a key bound for plain http to a non-loopback host (a row stored before the https rule, issue 12 §2)."""
    if resolved.base_url and _check_url(resolved.base_url, https_url_unless_loopback):
        raise ProviderCredentialsUnavailable(
            f"Provider {provider.name!r} would send its credential over plain http to a host that is not loopback; "
            "set an https:// base_url.", code="provider_destination_insecure")
    return resolved


def resolve_credentials(provider: ProviderConfig) -> ResolvedCredentials:
    """The credential to send for `provider`, read at call time.

    From the referenced connection when there is one (never falling back to embedded values);
    otherwise the DEPRECATED embedded `api_key` with a `DeprecationWarning`. Raises
    `ProviderCredentialsUnavailable` (with a specific `code`) when nothing usable resolves.
    """
    if provider.connection_id is not None:
        resolved = _from_connection(provider)
        return _over_tls(provider, dataclasses.replace(
            resolved, base_url=destination.effective_base_url(provider.base_url, provider.connection)))
    if provider.embedded_fields:
        return _over_tls(provider, dataclasses.replace(_from_embedded(provider), base_url=provider.base_url))
    raise ProviderCredentialsUnavailable(
        f"Provider {provider.name!r} has no credentials: set connection_name to a connection holding them.",
        code="provider_no_credentials")


@dataclass(frozen=True)
class ResolveCheck:
    resolvable: bool
    kind: str | None
    source: str | None
    deprecated: bool
    code: str
    detail: str


def provider_resolve_check(*, name: str, actor: Any = None, request: HttpRequest | None = None) -> ResolveCheck:
    """Whether the provider's credentials resolve now; audited; never returns the value."""
    provider = selectors.provider_get(name)
    try:
        with warnings.catch_warnings():
            # The check reports deprecation in its answer; it is not a use of the key.
            warnings.simplefilter("ignore", DeprecationWarning)
            resolved = resolve_credentials(provider)
    except ProviderCredentialsUnavailable as exc:
        result = ResolveCheck(resolvable=False, kind=None, source=None, deprecated=False, code=exc.code,
                              detail=exc.detail)
    else:
        result = ResolveCheck(
            resolvable=True, kind=resolved.kind, source=resolved.source, deprecated=resolved.deprecated,
            code="resolved_deprecated_embedded" if resolved.deprecated else "resolved",
            detail=("Credentials resolve from the deprecated embedded api_key; move it into a connection."
                    if resolved.deprecated else f"Credentials resolve from {resolved.source}."))
    audit_record(action="provider.resolve_check", target=provider.name, target_type="provider", actor=actor,
                 request=request, outcome="success" if result.resolvable else "failure",
                 reason="" if result.resolvable else result.code,
                 details={"credential_source": result.source, "deprecated": result.deprecated})
    return result


# --- master key rotation ----------------------------------------------------------------------

@dataclass
class ProviderRotationReport:
    rotated: int = 0
    already_current: int = 0
    failed: int = 0


def provider_secrets_rotate(*, actor: Any = None) -> ProviderRotationReport:
    """Re-encrypt every provider's embedded ciphertext under the current master key; idempotent."""
    ring = keyring()
    current = key_fingerprint(ring.current)
    report = ProviderRotationReport()
    # References to a secret manager hold no ciphertext: nothing for the master key to do.
    with_secrets = (ProviderConfig.objects.exclude(embedded_ciphertext="")
                    .exclude(embedded_ciphertext__startswith=managed.REF_PREFIX))
    report.already_current = with_secrets.filter(embedded_key_id=current).count()
    for pk in with_secrets.exclude(embedded_key_id=current).order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            provider = ProviderConfig.objects.select_for_update().get(pk=pk)
            try:
                token = ring.multi.rotate(provider.embedded_ciphertext.encode("ascii")).decode("ascii")
            except Exception:  # InvalidToken or corrupt data: count it, keep going
                logger.warning("provider %s embedded credentials cannot be decrypted by any key; left as is", pk)
                report.failed += 1
                continue
            provider.embedded_ciphertext, provider.embedded_key_id = token, current
            provider.save(update_fields=["embedded_ciphertext", "embedded_key_id", "updated_at"])
            report.rotated += 1
    audit_record(action="provider.secrets_rotate", target="providers", target_type="secret_store", actor=actor,
                 outcome="success" if not report.failed else "failure",
                 reason="" if not report.failed else f"{report.failed} providers could not be decrypted",
                 details={"rotated": report.rotated, "already_current": report.already_current,
                          "failed": report.failed, "key_id": current})
    return report

"""OAuth operations: start and complete the three grants, store tokens, refresh them exactly once.

Exactly one refresh per token across every process and machine (issue 4): a refresher
first *claims* the token with a conditional UPDATE (free lease and unchanged ``version``
→ lease taken and ``version`` + 1), calls the token endpoint outside any transaction,
then writes with a compare-and-set on the version its claim produced. The lease outlives
the token endpoint's timeout x tries plus a margin, so a live holder never loses it to a
second refresher that would present the same (rotating) refresh token; a holder whose
lease was lost anyway finds the version changed and discards its result. The database is
the only authority, so this holds on SQLite and PostgreSQL alike.
"""
from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from integrations import selectors as connection_selectors
from integrations import services as connection_services
from integrations.models import Connection
from integrations.secrets import fernet, managed
from integrations.secrets.base import SecretBackendUnavailable, SecretUnavailable
from oauthflow import grants
from oauthflow.grants import OAuthClient, TokenEndpointError, TokenSet
from oauthflow.models import GrantType, OAuthDeviceFlow, OAuthState, OAuthToken
from synthorg import events
from synthorg.audit import audit_record
from synthorg.config import get_config
from synthorg.errors import Conflict, ServiceUnavailable, ValidationFailed
from synthorg.models import AuditEvent
from synthorg.public_url import public_base_url

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/api/v1/oauth/callback"
OAUTH_TYPE = "oauth_app"
# Seconds the lease outlives the slowest token-endpoint call (a paused process, a slow DB).
LEASE_MARGIN_SECONDS = 30.0
# Transient refresh failures back off exponentially from here up to the cap (± 10 % jitter).
RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 3600.0
# RFC 8628 §3.5: slow_down adds 5 seconds to the polling interval, for this and later polls.
SLOW_DOWN_STEP_SECONDS = 5
# get_access_token refreshes on demand a token expiring within this many seconds.
ON_DEMAND_MARGIN_SECONDS = 10
# get_access_token re-reads a token being refreshed by someone else this often.
WAIT_POLL_SECONDS = 0.05
FAILED = AuditEvent.Outcome.FAILURE


# --- errors --------------------------------------------------------------------------

class NotOAuthApp(ValidationFailed):
    code = "not_oauth_app"


class OAuthEndpointMissing(ValidationFailed):
    code = "oauth_endpoint_missing"


class OAuthNotConnected(Conflict):
    code = "oauth_not_connected"


class ReauthorizationRequired(Conflict):
    code = "oauth_reauthorization_required"


class TokenUnavailable(ServiceUnavailable):
    code = "oauth_token_unavailable"


class MasterKeyMissing(ServiceUnavailable):
    code = "master_key_missing"


# --- shared pieces ---------------------------------------------------------------------

def lease_seconds() -> float:
    """The refresh lease: token endpoint (connect + read timeout) x tries + margin."""
    return sum(grants.TOKEN_TIMEOUT) * grants.TOKEN_TRIES + LEASE_MARGIN_SECONDS


def retry_delay(failures: int, retry_after: float | None = None) -> float:
    """Seconds before the next try after ``failures`` transient failures in a row."""
    delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, failures - 1))
    delay *= random.uniform(0.9, 1.1)  # jitter, not a secret
    return max(delay, retry_after or 0.0)


def redirect_uri(request: HttpRequest | None = None) -> str:
    """``<oauth.redirect_uri_base or the public base URL>/api/v1/oauth/callback``, exactly."""
    base = get_config().integrations.oauth.redirect_uri_base or public_base_url(request)
    if not base:
        raise ValidationFailed("No redirect URI can be built: set integrations.oauth.redirect_uri_base "
                               "or SYNTHORG_PUBLIC_URL.", code="oauth_redirect_uri_unknown")
    return base.rstrip("/") + CALLBACK_PATH


def _require_master_key() -> None:
    if managed.configured_backend() in managed.MANAGED_BACKENDS:
        return  # every OAuth secret goes to the secret manager: no master key needed (issue 14)
    try:
        fernet.keyring()
    except SecretUnavailable:
        raise MasterKeyMissing(
            "OAuth tokens are always stored encrypted by this service, even when connection credentials come "
            "from the env_var backend, so OAuth needs a master key: set SYNTHORG_MASTER_KEY (see the README, "
            "`Secrets`).") from None


def oauth_connection(name: str) -> Connection:
    connection = connection_selectors.connection_get(name)
    if connection.connection_type != OAUTH_TYPE:
        raise NotOAuthApp(f"Connection {connection.name!r} is a {connection.connection_type} connection; "
                          "OAuth needs an oauth_app connection.")
    return connection


def oauth_client(connection: Connection) -> OAuthClient:
    return OAuthClient.from_credentials(connection_services.connection_credentials(connection))


def _need(client: OAuthClient, field: str, grant: str) -> None:
    if not getattr(client, field):
        raise OAuthEndpointMissing(f"The {grant} grant needs `{field}` on this oauth_app connection.",
                                   errors={f"credentials.{field}": ["is required for this grant"]})


def _encrypt_tokens(tokens: TokenSet, *, connection_id: int, previous: str = "",
                    keep_refresh: str | None = None) -> tuple[str, str, bool]:
    """Through the configured secret backend: a Fernet token, or under a secret manager a reference
    to ``<prefix>/oauth-tokens/<connection id>`` (one per connection, which owns one token row)."""
    # A refresh answer without a refresh_token keeps the old one (RFC 6749 §6).
    refresh_token = tokens.refresh_token or keep_refresh
    data = {"access_token": tokens.access_token}
    if refresh_token:
        data["refresh_token"] = refresh_token
    ciphertext, key_id = managed.seal(managed.OAUTH_TOKENS, connection_id, data, previous=previous)
    return ciphertext, key_id, bool(refresh_token)


def _expires_at(tokens: TokenSet, now: datetime) -> datetime | None:
    return now + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None


def token_store(*, connection: Connection, grant_type: str, tokens: TokenSet, requested_scopes: Sequence[str],
                actor: Any = None, request: HttpRequest | None = None) -> OAuthToken:
    """Store the tokens of a completed grant, replacing any earlier token of the connection.

    Bumping ``version`` here also fences any refresh in flight: its write will not land.
    """
    now = timezone.now()
    current = OAuthToken.objects.filter(connection=connection).values_list("ciphertext", flat=True).first() or ""
    ciphertext, key_id, has_refresh = _encrypt_tokens(tokens, connection_id=connection.pk, previous=current)
    values = {
        "grant_type": grant_type, "ciphertext": ciphertext, "key_id": key_id, "has_refresh_token": has_refresh,
        "token_type": tokens.token_type, "scopes": list(tokens.scopes or requested_scopes),
        "expires_at": _expires_at(tokens, now), "status": OAuthToken.Status.ACTIVE, "obtained_at": now,
        "last_refreshed_at": None, "failure_count": 0, "last_error": "", "next_attempt_at": None,
        "lease_owner": "", "lease_until": None,
    }
    with transaction.atomic():
        token = OAuthToken.objects.select_for_update().filter(connection=connection).first()
        if token is None:
            token = OAuthToken.objects.create(connection=connection, version=1, **values)
        else:
            OAuthToken.objects.filter(pk=token.pk).update(version=F("version") + 1, **values)
            token.refresh_from_db()
        audit_record(action="oauth.connect", target=connection.name, target_type="connection", actor=actor,
                     request=request, details={"grant_type": grant_type, "scopes": token.scopes,
                                               "refresh_token_held": has_refresh})
        _announce_reauthorization(connection, required=False)
    logger.info("OAuth token stored for connection %s (grant %s)", connection.pk, grant_type)
    return token


def _audit_failure(action: str, connection: Connection, reason: str, *, actor: Any = None,
                   request: HttpRequest | None = None, details: dict[str, Any] | None = None) -> None:
    audit_record(action=action, target=connection.name, target_type="connection", outcome=FAILED,
                 reason=reason[:255], actor=actor, request=request, details=details or {})


# --- authorization code + PKCE ------------------------------------------------------------

@dataclass(frozen=True)
class AuthorizationStart:
    authorization_url: str
    state: str


def authorization_start(*, connection_name: str, scopes: Sequence[str] | None = None, user: Any = None,
                        request: HttpRequest | None = None) -> AuthorizationStart:
    """Create a single-use state and return the provider URL for the browser."""
    connection = oauth_connection(connection_name)
    client = oauth_client(connection)
    _need(client, "auth_url", "authorization_code")
    _require_master_key()
    oauth = get_config().integrations.oauth
    # pkce_required wins over a connection's opt-out (the catalog also refuses that combination).
    pkce = oauth.pkce_required or client.pkce
    requested = list(scopes) if scopes else list(client.scopes)
    uri = redirect_uri(request)
    state = secrets.token_urlsafe(32)
    try:
        url, verifier = grants.authorization_request(client, redirect_uri=uri, scopes=requested, state=state,
                                                     pkce=pkce)
    except TokenEndpointError as exc:
        raise ValidationFailed(exc.message, code=exc.error) from None
    except grants.ClientSettingInvalid as exc:
        raise ValidationFailed(f"credentials.{exc.field}: {exc.rule}",
                               errors={f"credentials.{exc.field}": [exc.rule]}) from None
    # Outside the transaction below (no network inside one); what it says binds the callback.
    iss_required = grants.iss_parameter_supported(client) is True
    with transaction.atomic():
        row = OAuthState.objects.create(
            state=state, connection=connection,
            user=user if getattr(user, "is_authenticated", False) else None,
            scopes=requested, redirect_uri=uri, issuer=client.expected_issuer, iss_required=iss_required,
            verifier_ciphertext="",
            expires_at=timezone.now() + timedelta(seconds=oauth.state_expiry_seconds),
        )
        if verifier:
            # Through the configured backend, keyed by the row's id (never by the state value).
            stored, _ = managed.seal(managed.OAUTH_STATES, row.pk, {"code_verifier": verifier})
            OAuthState.objects.filter(pk=row.pk).update(verifier_ciphertext=stored)
        audit_record(action="oauth.initiate", target=connection.name, target_type="connection", actor=user,
                     request=request, details={"grant_type": GrantType.AUTHORIZATION_CODE, "scopes": requested,
                                               "pkce": pkce})
    return AuthorizationStart(authorization_url=url, state=state)


# A callback that did not connect answers 4xx, never a 200 page that says "failed" (issue 12):
# 400 for a response we refuse or that carries the provider's refusal, 403 when the flow
# belongs to another logged-in user. Replays answer their first status again.
FAILED_CALLBACK_STATUS = 400


@dataclass(frozen=True)
class CallbackResult:
    """What the callback page shows. ``http_status``: 200 connected (or being completed), else 4xx."""

    outcome: str  # succeeded | failed | in_progress | refused
    code: str
    message: str
    http_status: int
    connection_name: str = ""
    replayed: bool = False


PROVIDER_ERROR_MESSAGES = {
    "access_denied": "Access was denied at the provider: the connection was not authorized.",
    "consent_required": "The provider needs consent that was not given.",
    "login_required": "The provider needs the user to log in.",
    "interaction_required": "The provider needs the user to interact.",
    "invalid_scope": "The provider refused the requested scopes.",
    "temporarily_unavailable": "The provider is temporarily unavailable; try again later.",
    "server_error": "The provider had an internal error; try again later.",
}


def _earlier_outcome(state: OAuthState) -> CallbackResult:
    name = state.connection.name
    if state.outcome == OAuthState.Outcome.SUCCEEDED:
        return CallbackResult("succeeded", "connected", f"Connection {name!r} is connected.", 200, name, True)
    if state.outcome == OAuthState.Outcome.FAILED:
        return CallbackResult("failed", state.outcome_code, state.outcome_detail, FAILED_CALLBACK_STATUS, name,
                              True)
    return CallbackResult("in_progress", "in_progress",
                          "This authorization is being completed; reload the connection's status shortly.",
                          200, name, True)


def authorization_complete(*, state: str, code: str = "", error: str = "", error_description: str = "",
                           iss: str | None = None, user: Any = None,
                           request: HttpRequest | None = None) -> CallbackResult:
    """Consume the state atomically, then exchange the code once. Replays get the earlier outcome."""
    now = timezone.now()
    row = OAuthState.objects.select_related("connection").filter(state=state).first() if state else None
    if row is None:
        return CallbackResult("refused", "unknown_state",
                              "This authorization link is unknown: start again from the connection.", 400)
    name = row.connection.name
    if row.consumed_at is not None:
        return _earlier_outcome(row)
    if row.expires_at <= now:
        _audit_failure("oauth.callback", row.connection, "expired state", actor=user, request=request)
        return CallbackResult("refused", "state_expired",
                              "This authorization took too long and has expired: start again.", 400, name)
    if row.user_id is not None and getattr(user, "is_authenticated", False) and user.pk != row.user_id:
        _audit_failure("oauth.callback", row.connection, "state belongs to another user", actor=user,
                       request=request)
        return CallbackResult("refused", "state_user_mismatch",
                              "This authorization was started by another user and cannot be completed here.",
                              403, name)
    # Single use: exactly one request moves the state out of `pending`.
    claimed = OAuthState.objects.filter(pk=row.pk, consumed_at__isnull=True).update(
        consumed_at=now, outcome=OAuthState.Outcome.IN_PROGRESS)
    if not claimed:
        row.refresh_from_db()
        return _earlier_outcome(row)

    def finish(outcome: str, result_code: str, message: str) -> CallbackResult:
        OAuthState.objects.filter(pk=row.pk).update(outcome=outcome, outcome_code=result_code,
                                                    outcome_detail=message[:500], verifier_ciphertext="")
        managed.destroy_after_commit([(row.verifier_ciphertext, f"{managed.OAUTH_STATES}/{row.pk}")])
        ok = outcome == OAuthState.Outcome.SUCCEEDED
        return CallbackResult("succeeded" if ok else "failed", result_code, message,
                              200 if ok else FAILED_CALLBACK_STATUS, name)

    # RFC 9207 §2.4: a provider whose metadata says it sends `iss` always does; a response
    # without it may come from another server (a mix-up attack): never exchange its code.
    if iss is None and row.iss_required:
        _audit_failure("oauth.connect", row.connection, "issuer missing", actor=user, request=request,
                       details={"grant_type": GrantType.AUTHORIZATION_CODE})
        return finish(OAuthState.Outcome.FAILED, "issuer_missing",
                      "The response carried no issuer (iss) although the provider declares it always sends "
                      "one; it was refused.")
    # RFC 9207: a response naming another issuer is a mix-up attack; never exchange its code.
    if iss is not None and row.issuer and iss.rstrip("/") != row.issuer:
        _audit_failure("oauth.connect", row.connection, "issuer mismatch", actor=user, request=request,
                       details={"grant_type": GrantType.AUTHORIZATION_CODE})
        return finish(OAuthState.Outcome.FAILED, "issuer_mismatch",
                      "The response came from an unexpected issuer and was refused.")
    if error:
        message = PROVIDER_ERROR_MESSAGES.get(error, f"The provider refused the authorization ({error}).")
        if error_description:
            message += f" Provider says: {error_description[:200]}"
        _audit_failure("oauth.connect", row.connection, f"provider error {error}"[:255], actor=user,
                       request=request, details={"grant_type": GrantType.AUTHORIZATION_CODE, "error": error})
        return finish(OAuthState.Outcome.FAILED, error[:64], message)
    if not code:
        return finish(OAuthState.Outcome.FAILED, "missing_code", "The provider sent neither a code nor an error.")
    verifier = None
    try:
        if row.verifier_ciphertext:
            verifier = managed.unseal(row.verifier_ciphertext).get("code_verifier")
        client = oauth_client(row.connection)
    except SecretBackendUnavailable:
        # Nothing was sent to the provider yet and the code is still good: give the claim back,
        # so the same callback completes once the manager is back (not `in_progress` for ever).
        OAuthState.objects.filter(pk=row.pk, outcome=OAuthState.Outcome.IN_PROGRESS).update(
            consumed_at=None, outcome=OAuthState.Outcome.PENDING)
        raise
    try:
        tokens = grants.exchange_code(client, code=code, redirect_uri=row.redirect_uri, code_verifier=verifier)
    except TokenEndpointError as exc:
        _audit_failure("oauth.connect", row.connection, exc.message, actor=user, request=request,
                       details={"grant_type": GrantType.AUTHORIZATION_CODE, "error": exc.error})
        return finish(OAuthState.Outcome.FAILED, exc.error or "token_error",
                      f"The code could not be exchanged for a token: {exc.message}")
    try:
        token_store(connection=row.connection, grant_type=GrantType.AUTHORIZATION_CODE, tokens=tokens,
                    requested_scopes=row.scopes, actor=user, request=request)
    except SecretBackendUnavailable:
        # The code is spent and its tokens could not be kept: a failure to start again from, not
        # a state `in_progress` for ever; the caller still gets the 503.
        finish(OAuthState.Outcome.FAILED, "secret_backend_unavailable",
               "The secret store was unavailable, so the token could not be kept: start again.")
        raise
    return finish(OAuthState.Outcome.SUCCEEDED, "connected", f"Connection {name!r} is connected.")


def states_purge(*, now: datetime | None = None) -> int:
    """Delete states that expired or were consumed before their expiry window ended."""
    now = now or timezone.now()
    window = timedelta(seconds=get_config().integrations.oauth.state_expiry_seconds)
    # Consumed states are kept one expiry window, so a replayed callback still gets its answer.
    purged = OAuthState.objects.filter(
        Q(expires_at__lte=now, consumed_at__isnull=True) | Q(consumed_at__lte=now - window))
    managed.destroy_after_commit([(stored, f"{managed.OAUTH_STATES}/{pk}") for pk, stored in purged.filter(
        verifier_ciphertext__startswith=managed.REF_PREFIX).values_list("pk", "verifier_ciphertext")])
    deleted, _ = purged.delete()
    return deleted


# --- client credentials -------------------------------------------------------------------

def client_credentials_connect(*, connection_name: str, scopes: Sequence[str] | None = None, user: Any = None,
                               request: HttpRequest | None = None) -> OAuthToken:
    connection = oauth_connection(connection_name)
    client = oauth_client(connection)
    _need(client, "token_url", "client_credentials")
    _require_master_key()
    requested = list(scopes) if scopes else list(client.scopes)
    try:
        tokens = grants.client_credentials(client, scopes=requested)
    except TokenEndpointError as exc:
        _audit_failure("oauth.connect", connection, exc.message, actor=user, request=request,
                       details={"grant_type": GrantType.CLIENT_CREDENTIALS, "error": exc.error})
        if exc.permanent:
            raise ValidationFailed(f"The provider refused the client credentials: {exc.message}",
                                   code="oauth_grant_refused") from None
        raise TokenUnavailable(f"The token endpoint failed: {exc.message}") from None
    return token_store(connection=connection, grant_type=GrantType.CLIENT_CREDENTIALS, tokens=tokens,
                       requested_scopes=requested, actor=user, request=request)


# --- device authorization (RFC 8628) ------------------------------------------------------

def schedule_device_poll(flow_id: int, countdown: float) -> None:
    """Queue the next poll. Tests replace this (eager Celery cannot honour a countdown)."""
    from oauthflow.tasks import device_flow_poll_task

    device_flow_poll_task.apply_async(args=[flow_id], countdown=max(0.0, countdown))


def device_flow_start(*, connection_name: str, scopes: Sequence[str] | None = None, user: Any = None,
                      request: HttpRequest | None = None) -> OAuthDeviceFlow:
    connection = oauth_connection(connection_name)
    client = oauth_client(connection)
    _need(client, "device_authorization_url", "device_code")
    _need(client, "token_url", "device_code")
    _require_master_key()
    oauth = get_config().integrations.oauth
    requested = list(scopes) if scopes else list(client.scopes)
    try:
        started = grants.device_authorize(client, scopes=requested)
    except TokenEndpointError as exc:
        _audit_failure("oauth.connect", connection, exc.message, actor=user, request=request,
                       details={"grant_type": GrantType.DEVICE_CODE, "error": exc.error})
        if exc.permanent:
            raise ValidationFailed(f"The provider refused the device authorization: {exc.message}",
                                   code="oauth_grant_refused") from None
        raise TokenUnavailable(f"The device authorization endpoint failed: {exc.message}") from None
    now = timezone.now()
    interval = started.interval or oauth.device_poll_interval_seconds
    # The flow ends at the provider's expiry or the configured timeout, whichever is first.
    lifetime = min(started.expires_in, oauth.device_flow_timeout_seconds)
    with transaction.atomic():
        # One pending flow per connection: a new start supersedes the old one.
        OAuthDeviceFlow.objects.filter(connection=connection, status=OAuthDeviceFlow.Status.PENDING).update(
            status=OAuthDeviceFlow.Status.FAILED, error="superseded by a newer device flow", finished_at=now)
        flow = OAuthDeviceFlow.objects.create(
            connection=connection, user=user if getattr(user, "is_authenticated", False) else None,
            scopes=requested, device_code_ciphertext="",
            user_code=started.user_code, verification_uri=started.verification_uri,
            verification_uri_complete=started.verification_uri_complete, interval_seconds=interval,
            expires_at=now + timedelta(seconds=lifetime), next_poll_at=now + timedelta(seconds=interval),
        )
        # Through the configured backend, keyed by the flow's id (so after the row exists).
        flow.device_code_ciphertext, _ = managed.seal(managed.OAUTH_DEVICE_CODES, flow.pk,
                                                      {"device_code": started.device_code})
        OAuthDeviceFlow.objects.filter(pk=flow.pk).update(device_code_ciphertext=flow.device_code_ciphertext)
        audit_record(action="oauth.initiate", target=connection.name, target_type="connection", actor=user,
                     request=request, details={"grant_type": GrantType.DEVICE_CODE, "scopes": requested})
        transaction.on_commit(lambda: schedule_device_poll(flow.pk, interval))
    return flow


def _device_finish(flow: OAuthDeviceFlow, status: str, error: str = "") -> None:
    finished = OAuthDeviceFlow.objects.filter(pk=flow.pk, status=OAuthDeviceFlow.Status.PENDING).update(
        status=status, error=error[:500], finished_at=timezone.now())
    if finished and managed.is_ref(flow.device_code_ciphertext):
        # A finished flow's device code is useless: a secret manager's copy goes (issue 14).
        OAuthDeviceFlow.objects.filter(pk=flow.pk).update(device_code_ciphertext="")
        managed.destroy_after_commit([(flow.device_code_ciphertext, f"{managed.OAUTH_DEVICE_CODES}/{flow.pk}")])
    if status != OAuthDeviceFlow.Status.APPROVED:
        actor = flow.user if flow.user_id else None
        _audit_failure("oauth.connect", flow.connection, f"device flow {status}: {error}"[:255], actor=actor,
                       details={"grant_type": GrantType.DEVICE_CODE})


def device_flow_poll(*, flow_id: int) -> float | None:
    """One poll of a pending device flow. Returns seconds until the next poll, or None when done.

    Safe to run twice: a conditional UPDATE on ``polls`` lets one runner poll per slot.
    """
    flow = OAuthDeviceFlow.objects.select_related("connection", "user").filter(pk=flow_id).first()
    if flow is None or flow.status != OAuthDeviceFlow.Status.PENDING:
        return None
    now = timezone.now()
    if now >= flow.expires_at:
        _device_finish(flow, OAuthDeviceFlow.Status.EXPIRED, "the device code expired before it was approved")
        return None
    if now < flow.next_poll_at:
        return (flow.next_poll_at - now).total_seconds()
    interval = flow.interval_seconds
    claimed = OAuthDeviceFlow.objects.filter(pk=flow.pk, status=OAuthDeviceFlow.Status.PENDING,
                                             polls=flow.polls).update(
        polls=F("polls") + 1, next_poll_at=now + timedelta(seconds=interval))
    if not claimed:
        return None  # another runner took this poll and carries the flow on
    client = oauth_client(flow.connection)
    device_code = managed.unseal(flow.device_code_ciphertext)["device_code"]
    try:
        tokens = grants.device_poll(client, device_code=device_code)
    except TokenEndpointError as exc:
        if exc.error == "authorization_pending":
            return float(interval)
        if exc.error == "slow_down":
            interval += SLOW_DOWN_STEP_SECONDS
            OAuthDeviceFlow.objects.filter(pk=flow.pk).update(
                interval_seconds=interval, next_poll_at=now + timedelta(seconds=interval))
            return float(interval)
        if exc.error == "access_denied":
            _device_finish(flow, OAuthDeviceFlow.Status.DENIED, "the user denied the request")
        elif exc.error == "expired_token":
            _device_finish(flow, OAuthDeviceFlow.Status.EXPIRED, "the device code expired at the provider")
        elif exc.permanent:
            _device_finish(flow, OAuthDeviceFlow.Status.FAILED, exc.message)
        else:
            wait = max(float(interval), exc.retry_after or 0.0)
            OAuthDeviceFlow.objects.filter(pk=flow.pk).update(
                error=exc.message[:500], next_poll_at=now + timedelta(seconds=wait))
            return wait
        return None
    token_store(connection=flow.connection, grant_type=GrantType.DEVICE_CODE, tokens=tokens,
                requested_scopes=flow.scopes, actor=flow.user if flow.user_id else None)
    _device_finish(flow, OAuthDeviceFlow.Status.APPROVED)
    return None


# --- refresh ---------------------------------------------------------------------------------

def _lease_owner() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def refresh_due(token: OAuthToken, now: datetime) -> bool:
    if token.expires_at is None:
        return False
    threshold = get_config().integrations.oauth.auto_refresh_threshold_seconds
    return token.expires_at <= now + timedelta(seconds=threshold)


@dataclass(frozen=True)
class Claim:
    token: OAuthToken
    owner: str
    version: int


def _claim(token: OAuthToken, now: datetime) -> Claim | None:
    """Take the refresh lease if it is free and nobody wrote since ``token`` was read."""
    owner = _lease_owner()
    taken = (OAuthToken.objects
             .filter(pk=token.pk, version=token.version)
             .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
             .exclude(status=OAuthToken.Status.REAUTHORIZATION_REQUIRED)
             .update(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds()),
                     version=F("version") + 1, status=OAuthToken.Status.REFRESHING))
    return Claim(token, owner, token.version + 1) if taken else None


def _fenced(claim: Claim) -> Any:
    return OAuthToken.objects.filter(pk=claim.token.pk, version=claim.version, lease_owner=claim.owner)


def _write_refreshed(claim: Claim, tokens: TokenSet, old_refresh: str | None) -> bool:
    now = timezone.now()
    ciphertext, key_id, has_refresh = _encrypt_tokens(tokens, connection_id=claim.token.connection_id,
                                                      previous=claim.token.ciphertext, keep_refresh=old_refresh)
    return bool(_fenced(claim).update(
        ciphertext=ciphertext, key_id=key_id, has_refresh_token=has_refresh, token_type=tokens.token_type,
        scopes=list(tokens.scopes) or claim.token.scopes, expires_at=_expires_at(tokens, now),
        status=OAuthToken.Status.ACTIVE, last_refreshed_at=now, failure_count=0, last_error="",
        next_attempt_at=None, lease_owner="", lease_until=None, version=claim.version + 1,
        updated_at=now))


def _write_failure(claim: Claim, exc: TokenEndpointError) -> bool:
    now = timezone.now()
    token = claim.token
    failures = token.failure_count + 1
    if exc.permanent:
        status = OAuthToken.Status.REAUTHORIZATION_REQUIRED
        next_attempt = None
    else:
        # Transient: the status stays what it was, unless the token is already unusable.
        expired = token.expires_at is not None and token.expires_at <= now
        status = OAuthToken.Status.ERROR if expired else (
            token.status if token.status != OAuthToken.Status.REFRESHING else OAuthToken.Status.ACTIVE)
        next_attempt = now + timedelta(seconds=retry_delay(failures, exc.retry_after))
    with transaction.atomic():  # the state, its audit row and its alert commit together (issue 16)
        written = bool(_fenced(claim).update(
            status=status, failure_count=failures, last_error=exc.message[:500], next_attempt_at=next_attempt,
            lease_owner="", lease_until=None, version=claim.version + 1, updated_at=now))
        if written:
            action = "oauth.reauthorization_required" if exc.permanent else "oauth.refresh"
            _audit_failure(action, token.connection, exc.message,
                           details={"error": exc.error, "status": exc.status, "failure_count": failures,
                                    "permanent": exc.permanent})
            if exc.permanent:
                _announce_reauthorization(token.connection, required=True, reason=exc.message)
    return written


def _needs_operator(token: OAuthToken, reason: str) -> None:
    """An expired token that nothing can renew: say so once, with an audit event."""
    with transaction.atomic():
        updated = OAuthToken.objects.filter(pk=token.pk, version=token.version).exclude(
            status=OAuthToken.Status.REAUTHORIZATION_REQUIRED).update(
            status=OAuthToken.Status.REAUTHORIZATION_REQUIRED, last_error=reason, version=F("version") + 1)
        if updated:
            _audit_failure("oauth.reauthorization_required", token.connection, reason)
            _announce_reauthorization(token.connection, required=True, reason=reason)


def _announce_reauthorization(connection: Connection, *, required: bool, reason: str = "") -> None:
    """Alerting (issue 16): a token that needs the operator opens a problem; a new grant resolves it."""
    events.emit(events.OAUTH_REAUTHORIZATION_REQUIRED, subject=f"oauth:{connection.pk}", active=required,
                title=f"OAuth connection {connection.name} needs re-authorisation", connection_id=connection.pk,
                connection_type=connection.connection_type,
                details={"connection": connection.name, "reason": reason[:200]})


@dataclass(frozen=True)
class RefreshOutcome:
    result: str  # refreshed | not_due | busy | backoff | lost_lease | failed | reauthorization_required | gone
    detail: str = ""


def token_refresh(*, token_id: int, force: bool = False) -> RefreshOutcome:
    """Refresh one token if it is due (or ``force``), under the lease. Safe to call from anywhere, twice."""
    token = OAuthToken.objects.select_related("connection").filter(pk=token_id).first()
    if token is None:
        return RefreshOutcome("gone")
    return _refresh(token, force=force)


def _refresh(token: OAuthToken, *, force: bool) -> RefreshOutcome:
    # The claim is a compare-and-set on the version of *this* read of the row: a caller
    # whose read is stale (someone refreshed since) gets "busy", never a second refresh.
    now = timezone.now()
    if token.status == OAuthToken.Status.REAUTHORIZATION_REQUIRED:
        return RefreshOutcome("reauthorization_required", token.last_error)
    if not force and not refresh_due(token, now):
        return RefreshOutcome("not_due")
    if not force and token.next_attempt_at is not None and token.next_attempt_at > now:
        return RefreshOutcome("backoff")
    if not token.refreshable:
        if token.expires_at is not None and token.expires_at <= now:
            _needs_operator(token, "the token expired and the provider gave no refresh token")
            return RefreshOutcome("reauthorization_required")
        return RefreshOutcome("not_due", "no refresh token: the operator reconnects at expiry")
    claim = _claim(token, now)
    if claim is None:
        return RefreshOutcome("busy")
    client = oauth_client(token.connection)
    old_refresh = None
    try:
        if token.grant_type == GrantType.CLIENT_CREDENTIALS:
            tokens = grants.client_credentials(client, scopes=token.scopes or client.scopes)
        else:
            old_refresh = managed.unseal(token.ciphertext).get("refresh_token")
            tokens = grants.refresh(client, refresh_token=old_refresh or "")
    except TokenEndpointError as exc:
        if not _write_failure(claim, exc):
            return _counted(RefreshOutcome("lost_lease", exc.message))
        logger.warning("OAuth refresh of connection %s failed (%s): %s", token.connection_id,
                       "permanent" if exc.permanent else "transient", exc.message)
        return _counted(RefreshOutcome("reauthorization_required" if exc.permanent else "failed", exc.message))
    if not _write_refreshed(claim, tokens, old_refresh):
        # Our lease was taken over and a newer token written: ours must not overwrite it.
        logger.warning("OAuth refresh of connection %s lost its lease; result discarded", token.connection_id)
        return _counted(RefreshOutcome("lost_lease"))
    logger.info("OAuth token of connection %s refreshed", token.connection_id)
    return _counted(RefreshOutcome("refreshed"))


def _counted(outcome: RefreshOutcome) -> RefreshOutcome:
    """A refresh that reached the token endpoint, in the metrics by its outcome (synthorg/metrics.py)."""
    from synthorg.metrics import TOKEN_REFRESHES

    TOKEN_REFRESHES.labels(outcome.result).inc()
    return outcome


def tokens_refresh_due(*, now: datetime | None = None) -> list[int]:
    """The token manager's sweep: the ids of tokens to refresh now (the beat task queues them)."""
    from oauthflow.selectors import tokens_due_for_refresh

    now = now or timezone.now()
    due: list[int] = []
    for token in tokens_due_for_refresh(now=now):
        if token.refreshable:
            due.append(token.pk)
        elif token.expires_at is not None and token.expires_at <= now:
            _needs_operator(token, "the token expired and the provider gave no refresh token")
    return due


def get_access_token(connection: Connection, *, wait_seconds: float | None = None) -> str:
    """A valid access token for ``connection``, refreshing on demand under the same lease.

    While another process holds the lease on an expired token, waits (at most the lease
    time, or ``wait_seconds``) for its result instead of refreshing a second time.
    Raises ``OAuthNotConnected`` (409), ``ReauthorizationRequired`` (409) or
    ``TokenUnavailable`` (503: expired and not refreshable right now).
    """
    deadline = time.monotonic() + (lease_seconds() if wait_seconds is None else wait_seconds)
    attempted = False
    while True:
        token = OAuthToken.objects.select_related("connection").filter(connection=connection).first()
        if token is None:
            raise OAuthNotConnected(f"Connection {connection.name!r} has no OAuth token: connect it first.")
        if token.status == OAuthToken.Status.REAUTHORIZATION_REQUIRED:
            raise ReauthorizationRequired(f"Connection {connection.name!r} needs the operator to reconnect "
                                          f"({token.last_error or 'the grant is no longer valid'}).")
        now = timezone.now()
        valid = token.expires_at is None or token.expires_at > now
        leased = token.lease_until is not None and token.lease_until >= now
        # Callers refresh only a token about to become unusable; renewing ahead of time
        # within the threshold is the token manager's job (a just-refreshed short-lived
        # token may already be inside the threshold and must not be refreshed again).
        fresh = token.expires_at is None or token.expires_at > now + timedelta(seconds=ON_DEMAND_MARGIN_SECONDS)
        if valid and (attempted or leased or not token.refreshable or fresh):
            return managed.unseal(token.ciphertext)["access_token"]
        if not leased and not attempted:
            # An expired token is needed now: ignore the transient-failure backoff.
            # One attempt only: a token whose lifetime is shorter than the threshold is
            # "due" again right after its refresh, and must not be refreshed in a loop.
            _refresh(token, force=not valid)
            attempted = True
            continue
        if not valid and attempted and not leased:
            raise TokenUnavailable(f"The OAuth token of {connection.name!r} expired and could not be refreshed "
                                   f"({token.last_error or 'token endpoint failure'}); try again shortly.")
        if time.monotonic() >= deadline:
            raise TokenUnavailable(f"The OAuth token of {connection.name!r} is being refreshed elsewhere and "
                                   "did not arrive in time; try again shortly.")
        time.sleep(WAIT_POLL_SECONDS)


# --- destination change (issue 12) ----------------------------------------------------------

# The fields whose change means tokens were obtained from another authorization server.
ENDPOINT_FIELDS = frozenset({"auth_url", "token_url", "device_authorization_url", "issuer"})


def tokens_drop_for_destination(connection: Connection, *, changed: Sequence[str], actor: Any = None,
                                request: HttpRequest | None = None) -> None:
    """Registered with ``integrations.dependants``: an oauth_app whose endpoints changed loses its
    tokens (status ``not_connected``), its open authorization states and its pending device flows,
    so no token, refresh token or code obtained from one server is ever sent to another.

    Runs inside ``connection_update``'s transaction; deleting the token row also fences a
    refresh in flight (its compare-and-set write finds no row).
    """
    endpoints = sorted(ENDPOINT_FIELDS.intersection(changed))
    if connection.connection_type != OAUTH_TYPE or not endpoints:
        return
    dropped = list(OAuthToken.objects.filter(connection=connection).values_list("ciphertext", flat=True))
    tokens, _ = OAuthToken.objects.filter(connection=connection).delete()
    managed.destroy_after_commit([(stored, f"{managed.OAUTH_TOKENS}/{connection.pk}") for stored in dropped],
                                 actor=actor)
    open_states = OAuthState.objects.filter(connection=connection, consumed_at__isnull=True)
    managed.destroy_after_commit([(stored, f"{managed.OAUTH_STATES}/{pk}") for pk, stored in open_states.filter(
        verifier_ciphertext__startswith=managed.REF_PREFIX).values_list("pk", "verifier_ciphertext")], actor=actor)
    states, _ = open_states.delete()
    flows = OAuthDeviceFlow.objects.filter(connection=connection, status=OAuthDeviceFlow.Status.PENDING).update(
        status=OAuthDeviceFlow.Status.FAILED, error="the connection's OAuth endpoints changed",
        finished_at=timezone.now())
    if tokens or states or flows:
        audit_record(action="oauth.disconnect", target=connection.name, target_type="connection", actor=actor,
                     request=request, reason="destination_changed",
                     details={"changed": endpoints, "tokens_dropped": tokens, "states_dropped": states,
                              "device_flows_ended": flows})
        logger.info("OAuth tokens of connection %s dropped: its endpoints changed", connection.pk)

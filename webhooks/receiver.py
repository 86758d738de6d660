"""The receiver's steps after the body is read: signature, freshness and replay, rate limit,
body, store. The view does the flood guard and the size rule (they come before the body).

Every refusal for "who are you" reasons (unknown connection, no signing secret, a type
without a verifier, a bad, missing or stale signature) is the same 401 with the same body;
the real reason goes to the rejection counters, the bounded sample and the server log.
"""
from __future__ import annotations

import enum
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, DataError, IntegrityError, connections, transaction
from django.db import connection as db_connection
from django.db.models import F, OuterRef, Subquery
from django.db.models.constants import OnConflict
from django.db.models.functions import Lower
from django.db.models.sql.subqueries import InsertQuery
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from integrations import services
from integrations.models import CONNECTION_NAME_PATTERN, Connection
from integrations.ratelimit import RateLimitExceeded, get_rate_limiter
from integrations.secrets.base import SecretBackendUnavailable, SecretUnavailable
from integrations.types import get_type
from synthorg.config import get_config
from synthorg.json_values import storable_text
from webhooks import dispatcher as publication
from webhooks.gate import Admission, PendingAdmission, connection_bucket, get_gate
from webhooks.group_commit import GroupCommit
from webhooks.models import Delivery, WebhookEndpoint
from webhooks.payloads import payload_parse
from webhooks.rejections import rejection_record
from webhooks.tasks import delivery_publish_batch_task
from webhooks.verifiers import VerificationResult, get_verifier
from webhooks.verifiers.base import FoldedHeaders, body_replay_key

logger = logging.getLogger(__name__)

UNAUTHORIZED_BODY: Mapping[str, str] = {"detail": "The request could not be authenticated.",
                                        "code": "webhook_unauthorized"}
AUTO_EVENT_TYPE = "auto"
UNKNOWN_EVENT = "unknown"
# Headers kept with a delivery: routing and provenance, never signatures.
KEPT_HEADERS = (
    "content-type", "user-agent", "x-github-event", "x-github-delivery", "x-github-hook-id",
    "x-github-hook-installation-target-type", "x-slack-request-timestamp", "x-slack-retry-num",
    "x-slack-retry-reason", "webhook-id", "webhook-timestamp",
)


class DeliveryNotStored(Exception):
    """The database refused a delivery's values; the message names no value (a 500)."""


@dataclass(frozen=True)
class Receipt:
    """What the view answers: a status, a JSON body and extra headers."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def unauthorized(*, connection: Connection | None, connection_name: str, reason: str, path_event_type: str,
                 remote_ip: str | None) -> Receipt:
    logger.warning("webhook refused for connection %r: %s (from %s)", connection_name, reason, remote_ip)
    rejection_record(connection=connection, connection_name=connection_name, reason=reason, status=401,
                     path_event_type=path_event_type, remote_ip=remote_ip)
    return Receipt(401, UNAUTHORIZED_BODY)


_NAME_RE = re.compile(CONNECTION_NAME_PATTERN)
T = TypeVar("T")


def on_live_connection(statement: Callable[[], T]) -> T:
    """Run one of the receiver's statements without Django's per-request health check.

    With ``CONN_HEALTH_CHECKS`` Django spends a ``SELECT 1`` round trip before each request's
    first query to find out whether the persistent connection still works. Here the statement
    itself is that test: when it fails and the connection is found dead (the server restarted
    or dropped it), the connection is closed and the statement runs once more on a new one.
    Both receiver statements may run twice: a read, and an insert made idempotent by the unique
    (connection, replay key). Should an insert commit and the connection die before the answer
    reached us, the repeat finds it stored: the sender is told "duplicate" (it stops retrying,
    which is right) and the outbox sweep publishes the row.
    """
    connection = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: each proxy attribute costs a lookup
    if (connection.in_atomic_block or connection.connection is None or connection.health_check_done
            or not connection.health_check_enabled):
        return statement()
    connection.health_check_done = True
    try:
        return statement()
    except (DatabaseError, psycopg.Error):
        if connection.is_usable():
            raise
        logger.warning("the database connection was dead; reconnecting")
        connection.close()
        return statement()


def per_thread_compiled(local: threading.local, connection: Any, build: Callable[[], T]) -> T:
    """``build()``'s result, once per thread and database: a compiled statement belongs to the
    connection (its vendor's SQL, its converters) that compiled it."""
    cache = local.__dict__.setdefault("compiled", {})
    key = (connection.alias, connection.vendor)
    if key not in cache:
        cache[key] = build()
    return cache[key]


# `_verify`'s answer when the secret manager cannot be read (issue 14): 503 + Retry-After.
SECRET_BACKEND_DOWN = "secret_backend_unavailable"  # noqa: S105 - an error code

# The columns of the connection the receiver uses; the others stay deferred (never read here).
RECEIPT_CONNECTION_FIELDS = ("id", "name", "connection_type", "config", "secret_backend", "secret_id")
_NAME_MARK = "\x00name"


@dataclass(frozen=True)
class _CompiledReceiptQuery:
    sql: str
    params: tuple[Any, ...]  # with the marker value where each request's name goes
    field_names: tuple[str, ...]  # the model's columns, first in the row
    annotations: tuple[tuple[str, int], ...]  # (attribute, position) of the annotated columns
    converters: tuple[tuple[int, tuple[Any, ...], Any], ...]  # (position, converters, expression)


class _ReceiptQuery:
    """The receiver's one read, compiled by the ORM once per thread and database.

    Building and compiling this queryset (and running it through a model iterable) costs more
    CPU per request than the whole baseline receiver. Its SQL never changes, so the ORM compiles
    it once with a marker value; each request binds its name, and the row goes
    through the same converters and ``Model.from_db`` the ORM itself uses. Per thread, because
    a compiler and its converters belong to one thread's database connection.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def _build(self) -> _CompiledReceiptQuery:
        endpoint = WebhookEndpoint.objects.filter(connection=OuterRef("pk"))
        queryset = (
            Connection.objects.alias(lower_name=Lower("name")).filter(lower_name=_NAME_MARK)
            .only(*RECEIPT_CONNECTION_FIELDS).order_by()
            .annotate(secret_ciphertext=services.secret_ciphertext_subquery(),
                      previous_secret_ciphertext=Subquery(endpoint.values("previous_secret_ciphertext")[:1]),
                      previous_valid_until=Subquery(endpoint.values("previous_valid_until")[:1])))[:1]
        compiler = queryset.query.get_compiler(using=db_connection.alias)
        sql, params = compiler.as_sql()
        select_fields = compiler.klass_info["select_fields"]
        field_names = tuple(compiler.select[i][0].target.attname for i in select_fields)
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        return _CompiledReceiptQuery(
            sql=sql, params=tuple(params), field_names=field_names,
            annotations=tuple(compiler.annotation_col_map.items()),
            converters=tuple((position, tuple(functions), expression)
                             for position, (functions, expression) in converters.items()))

    def _compiled(self) -> _CompiledReceiptQuery:
        return per_thread_compiled(self._local, db_connection, self._build)

    def run(self, *, lower_name: str) -> Connection | None:
        query = self._compiled()
        params = [lower_name if mark == _NAME_MARK else mark for mark in query.params]

        def read() -> Any:
            with db_connection.cursor() as cursor:
                cursor.execute(query.sql, params)
                return cursor.fetchone()

        fetched = on_live_connection(read)
        if fetched is None:
            return None
        row = list(fetched)
        for position, functions, expression in query.converters:
            value = row[position]
            for function in functions:
                value = function(value, expression, db_connection)
            row[position] = value
        connection = Connection.from_db(db_connection.alias, query.field_names, row[:len(query.field_names)])
        for attribute, position in query.annotations:
            setattr(connection, attribute, row[position])
        return connection


_receipt_query = _ReceiptQuery()

# How long a cached connection may be used without a new read even when the generation stamp
# has not changed: the bound on staleness should announcing a change to Redis ever fail.
CONNECTION_CACHE_SECONDS = 10.0
_CONNECTION_CACHE_MAX = 10_000
_connection_cache: dict[str, tuple[str, float, Connection]] = {}


def connection_cache_clear() -> None:
    """Forget every cached connection (tests, whose rolled-back rows announce nothing)."""
    _connection_cache.clear()


def connection_for_receipt(name: str, *, generation: str | None = None,
                           fresh: bool = False) -> tuple[Connection | None, bool]:
    """The connection named ``name`` (case-insensitive, as ``selectors.connection_find``), with
    what the receiver needs next read in the same query instead of three more, and whether it
    came from this process's cache:

    - ``secret_ciphertext``: its secret record's ciphertext (None without one);
    - ``previous_secret_ciphertext`` and ``previous_valid_until``: the rotated-out signing secret
      and the end of its grace (`signing_secrets` checks the time).

    With a ``generation`` stamp (`integrations.generation`, read by the gate in the same round
    trip as the limits), a connection read under the same stamp less than
    ``CONNECTION_CACHE_SECONDS`` ago is used again without a query; ``fresh`` forces the read.
    """
    # A name that cannot exist is not looked up (NUL bytes and the like never reach the database).
    if not _NAME_RE.fullmatch(name):
        return None, False
    lower_name = name.lower()
    if generation is not None and not fresh:
        cached = _connection_cache.get(lower_name)
        if cached is not None and cached[0] == generation and time.monotonic() - cached[1] < CONNECTION_CACHE_SECONDS:
            return cached[2], True
    # The stamp was read before this query: a change committed after it announces a new stamp,
    # so the copy is never kept past a change it missed.
    connection = _receipt_query.run(lower_name=lower_name)
    if generation is not None:
        if connection is None:
            _connection_cache.pop(lower_name, None)
        else:
            if len(_connection_cache) >= _CONNECTION_CACHE_MAX:
                _connection_cache.clear()
            _connection_cache[lower_name] = (generation, time.monotonic(), connection)
    return connection, False


def signing_secrets(connection: Connection, now: datetime) -> list[bytes]:
    """[current, previous]: the previous secret only while its rotation grace lasts.

    ``connection`` comes from `connection_for_receipt`, with the ciphertexts read in the same
    query. The decrypted values are kept on that object: it is what the process caches for
    the connection (under the generation stamp, at most ``CONNECTION_CACHE_SECONDS``), so a
    rotation or an update, which reads a new object, is seen at once.
    """
    valid_until = connection.previous_valid_until
    in_grace = bool(valid_until and valid_until > now)
    decrypted: tuple[bytes, bytes] | None = connection.__dict__.get("_signing_secrets")
    if decrypted is None:
        current = services.connection_secrets(connection, ciphertext=connection.secret_ciphertext)
        previous = ""
        if connection.previous_secret_ciphertext and in_grace:
            previous = (services.secret_decrypt_cached(connection.previous_secret_ciphertext)
                        .get("signing_secret") or "")
        decrypted = ((current.get("signing_secret") or "").encode("utf-8"), previous.encode("utf-8"))
        connection.__dict__["_signing_secrets"] = decrypted
    return [decrypted[0], decrypted[1] if in_grace else b""]


def scheme_for(connection: Connection) -> tuple[str | None, dict[str, Any]]:
    """The verifier scheme and its options for this connection (generic_http chooses per connection)."""
    try:
        ctype = get_type(connection.connection_type)
    except KeyError:
        return None, {}
    scheme = ctype.webhook_scheme
    config = connection.config or {}
    if connection.connection_type == "generic_http":
        scheme = config.get("signature_scheme") or "generic_hmac"
        if scheme == "generic_hmac":
            return scheme, {
                "header": config.get("signature_header") or "X-Signature",
                "prefix": config.get("signature_prefix") or "",
                "encoding": config.get("signature_encoding") or "hex",
                "timestamp_header": config.get("timestamp_header") or None,
                "event_header": config.get("event_header") or None,
            }
    return scheme, {}


def provider_event_name(connection_type: str, scheme: str | None, result: VerificationResult,
                        payload: Mapping[str, Any]) -> str:
    if result.event_name:
        return result.event_name
    if connection_type == "slack":
        event = payload.get("event")
        if (payload.get("type") == "event_callback" and isinstance(event, Mapping)
                and isinstance(event.get("type"), str)):
            return event["type"]
        if isinstance(payload.get("type"), str):
            return payload["type"]
        if isinstance(payload.get("command"), str):
            return "slash_command"
        return ""
    if isinstance(payload.get("type"), str):
        return payload["type"]
    return ""


def _provider_delivery_id(result: VerificationResult, payload: Mapping[str, Any]) -> str:
    value = result.message_id or result.unsigned_delivery_id or payload.get("event_id") or ""
    return storable_text(str(value)[:200])


def _kept_headers(headers: Mapping[str, str], options: Mapping[str, Any]) -> dict[str, str]:
    names = set(KEPT_HEADERS)
    for key in ("event_header", "timestamp_header"):
        if options.get(key):
            names.add(str(options[key]).lower())
    if isinstance(headers, FoldedHeaders):  # names already lower-cased: look the few kept ones up
        return {name: storable_text(headers[name][:500]) for name in names if name in headers}
    return {name.lower(): storable_text(value[:500]) for name, value in headers.items() if name.lower() in names}


def _duplicate(connection: Connection, delivery_pk: int, *, path_event_type: str, remote_ip: str | None) -> Receipt:
    Delivery.objects.filter(pk=delivery_pk).update(duplicates=F("duplicates") + 1)
    rejection_record(connection=connection, connection_name=connection.name, reason="duplicate", status=200,
                     path_event_type=path_event_type, remote_ip=remote_ip, outcome="duplicate",
                     delivery_id=delivery_pk)
    return Receipt(200, {"status": "duplicate", "delivery_id": delivery_pk})


def admit_begin(*, remote_ip: str | None, connection_name: str) -> PendingAdmission:
    """Step 0, before the body is read: the per-address flood guard and, in the same Redis round
    trip, the connection's rate-limit reservation and the generation stamp of cached
    connections (`webhooks.gate`). The script is sent here; the view reads a small body and
    `delivery_prepare` checks it while Redis answers; `admit_finish` reads the answer."""
    cfg = get_config().integrations.webhooks
    return get_gate().begin(remote_ip=remote_ip, connection_name=connection_name,
                            flood_rpm=cfg.flood_rpm_per_ip, connection_rpm=cfg.rate_limit_rpm)


def admit_finish(pending: PendingAdmission, *, remote_ip: str | None) -> tuple[Receipt | None, Admission]:
    admission = pending.result()
    if admission.flood_retry_after is None:
        return None, admission
    rejection_record(connection=None, connection_name="", reason="flood", status=429, path_event_type="",
                     remote_ip=remote_ip)
    return Receipt(429, {"detail": "Too many requests from this address; retry later.", "code": "rate_limited"},
                   {"Retry-After": _retry_after(admission.flood_retry_after)}), admission


def release(admission: Admission, *, connection_name: str, receipt_status: int | None) -> None:
    """Hand back the connection's reservation unless an accepted delivery used it (a 401, a
    duplicate, a bad or too large body, Slack's challenge)."""
    if admission.connection_reserved and receipt_status != 202:
        get_gate().refund(connection_name=connection_name,
                          connection_rpm=get_config().integrations.webhooks.rate_limit_rpm, local=admission.local)


def _retry_after(seconds: float) -> str:
    return str(max(1, int(seconds + 0.999)))


def _existing_delivery(connection: Connection, replay_key: str) -> int | None:
    return (Delivery.objects.filter(connection=connection, replay_key=replay_key)
            .values_list("pk", flat=True).first())


@dataclass(frozen=True)
class _Verified:
    result: VerificationResult
    scheme: str | None
    options: dict[str, Any]
    replay_key: str
    matched: str
    outcome: str


# Every frame from here down (secret decryption, the verifier, the HMAC) holds signing secrets:
# error reports (DEBUG's 500 page in `make run`, mailed reports) show none of their variables.
@sensitive_variables()
def _verify(connection: Connection, *, body: bytes, headers: Mapping[str, str], unix_now: float,
            received_at: datetime) -> _Verified | str:
    """Step 2 (and 3's freshness, part of each verifier): a `_Verified`, or the reason to refuse."""
    cfg = get_config().integrations.webhooks
    scheme, options = scheme_for(connection)
    if scheme is None:
        return "no_verifier"
    try:
        verifier = get_verifier(scheme)
    except KeyError:
        return "no_verifier"
    body_key = body_replay_key(body)
    verify = cfg.verify_signatures
    if not verify and not settings.SYNTHORG_DEV:
        # The system check stops startup on this; a running process still never skips verification.
        logger.error("integrations.webhooks.verify_signatures is false outside development mode; verifying anyway")
        verify = True
    if not verify:
        return _Verified(VerificationResult(ok=True, replay_key=body_key), scheme, options, body_key, "none",
                         Delivery.Outcome.ACCEPTED_UNVERIFIED)
    try:
        secrets = signing_secrets(connection, received_at)
    except SecretBackendUnavailable:
        # The secret manager is down and nothing is cached: the sender must retry, not give up.
        logger.warning("signing secret of connection %s: the secret backend is unavailable", connection.pk)
        return SECRET_BACKEND_DOWN
    except SecretUnavailable:
        logger.exception("signing secret of connection %s cannot be read", connection.pk)
        return "secret_unavailable"
    result = verifier.verify(body=body, headers=headers, secrets=secrets, options=options, now=unix_now,
                             tolerance_seconds=cfg.replay_window_seconds)
    if not result.ok:
        return result.reason
    return _Verified(result, scheme, options, result.replay_key or body_key,
                     "current" if result.secret_index == 0 else "previous", Delivery.Outcome.ACCEPTED)


@dataclass(frozen=True)
class Prepared:
    """The signature checked, before the gate's answer, against this process's cached copy of
    the connection (`delivery_prepare`); `delivery_receive` uses it only when the gate's
    generation stamp says the copy is still current."""

    generation: str
    connection: Connection
    verified: _Verified
    unix_now: float
    received_at: datetime


@sensitive_variables()
def delivery_prepare(*, connection_name: str, body: bytes, headers: Mapping[str, str]) -> Prepared | None:
    """Step 2 done early on the cached connection, while the gate's round trip is under way
    (issue 15 §7). Nothing is decided here: no refusal, no record, no read of the database;
    None when there is no cached copy or the signature does not check out against it (then
    `delivery_receive` does step 2 itself, as without this)."""
    cached = _connection_cache.get(connection_name.lower())
    if cached is None or time.monotonic() - cached[1] >= CONNECTION_CACHE_SECONDS:
        return None
    unix_now = time.time()
    received_at = datetime.fromtimestamp(unix_now, tz=UTC)
    verified = _verify(cached[2], body=body, headers=headers, unix_now=unix_now, received_at=received_at)
    if isinstance(verified, str):
        return None
    return Prepared(cached[0], cached[2], verified, unix_now, received_at)


# The body and everything parsed from it stay out of error reports (DEBUG's 500 page, mailed
# reports): no payload fragment in any log (issue 13).
@sensitive_variables("body", "parsed", "payload", "values")
def delivery_receive(*, connection_name: str, path_event_type: str, body: bytes, headers: Mapping[str, str],
                     content_type: str, remote_ip: str | None, now: float | None = None,
                     admission: Admission | None = None, prepared: Prepared | None = None) -> Receipt:
    """Steps 2-6 of the receiver on the raw body; the caller enforced the flood guard and size
    (``admission``, from `admit`; without one the connection's limit is taken here).
    ``prepared`` (`delivery_prepare`) is step 2 already done on a cached copy of the
    connection: used when the admission's generation stamp is the one it was cached under."""
    cfg = get_config().integrations.webhooks
    admission = admission or Admission()

    def refuse(reason: str, connection: Connection | None = None) -> Receipt:
        return unauthorized(connection=connection, connection_name=connection_name, reason=reason,
                            path_event_type=path_event_type, remote_ip=remote_ip)

    # 2. signature (3's freshness is part of each verifier)
    verified: _Verified | str
    if (prepared is not None and now is None and admission.generation is not None
            and prepared.generation == admission.generation):
        connection, cached = prepared.connection, True
        verified, unix_now, received_at = prepared.verified, prepared.unix_now, prepared.received_at
    else:
        unix_now = time.time() if now is None else now
        received_at = timezone.now() if now is None else datetime.fromtimestamp(unix_now, tz=UTC)
        found, cached = connection_for_receipt(connection_name, generation=admission.generation)
        if found is None:
            return refuse("unknown_connection")
        connection = found
        verified = _verify(connection, body=body, headers=headers, unix_now=unix_now, received_at=received_at)
    if isinstance(verified, str) and cached:
        # Never refuse on a cached copy alone: read the connection again and verify once more.
        connection, _cached = connection_for_receipt(connection_name, generation=admission.generation, fresh=True)
        if connection is None:
            return refuse("unknown_connection")
        verified = _verify(connection, body=body, headers=headers, unix_now=unix_now, received_at=received_at)
    if verified == SECRET_BACKEND_DOWN:
        rejection_record(connection=connection, connection_name=connection.name, reason=SECRET_BACKEND_DOWN,
                         status=503, path_event_type=path_event_type, remote_ip=remote_ip)
        return Receipt(503, {"detail": "The signing secret cannot be read right now; retry later.",
                             "code": SECRET_BACKEND_DOWN},
                       {"Retry-After": _retry_after(SecretBackendUnavailable.retry_after or 30)})
    if isinstance(verified, str):
        return refuse(verified, connection)
    replay_key = verified.replay_key

    # 4. rate limit per connection, shared by every process. The gate reserved it before the
    # body was read (Redis); without a reservation it is taken now. A duplicate (3) is
    # answered as one even over the limit.
    retry_after: float | None = None
    if admission.connection_reserved is False:
        retry_after = admission.connection_retry_after
    elif admission.connection_reserved is None and cfg.rate_limit_rpm:
        existing = _existing_delivery(connection, replay_key)
        if existing is not None:
            return _duplicate(connection, existing, path_event_type=path_event_type, remote_ip=remote_ip)
        try:
            get_rate_limiter().acquire(connection_bucket(connection.name), rpm=cfg.rate_limit_rpm,
                                       burst=cfg.rate_limit_rpm - 1, wait=False)
        except RateLimitExceeded as exc:
            retry_after = exc.retry_after
    if retry_after is not None:
        existing = _existing_delivery(connection, replay_key)
        if existing is not None:
            return _duplicate(connection, existing, path_event_type=path_event_type, remote_ip=remote_ip)
        rejection_record(connection=connection, connection_name=connection.name, reason="rate_limited",
                         status=429, path_event_type=path_event_type, remote_ip=remote_ip)
        return Receipt(429, {"detail": "Too many deliveries for this connection; retry later.",
                             "code": "rate_limited"}, {"Retry-After": _retry_after(retry_after)})

    # 5. body: what the sender meant, and the copy PostgreSQL can store (`webhooks.payloads`)
    parsed = payload_parse(body, content_type)
    if parsed is None:
        rejection_record(connection=connection, connection_name=connection.name, reason="malformed_body",
                         status=400, path_event_type=path_event_type, remote_ip=remote_ip)
        return Receipt(400, {"detail": "The body must be a JSON object or a form-encoded body.",
                             "code": "malformed_body"})
    if connection.connection_type == "slack" and parsed.value.get("type") == "url_verification":
        challenge = parsed.value.get("challenge")
        if isinstance(challenge, str):
            return Receipt(200, {"challenge": challenge})
    payload = parsed.storable

    # 6. store, then answer. 3 (replays): the unique (connection, replay key) is the authority;
    # an insert it refuses is a duplicate of the delivery already stored under that key.
    result = verified.result
    # Text columns take the escaped forms too (a header or a payload field may hold a NUL).
    event_name = storable_text(provider_event_name(connection.connection_type, verified.scheme, result,
                                                   payload)[:200])
    event_type = (event_name or UNKNOWN_EVENT) if path_event_type == AUTO_EVENT_TYPE else path_event_type
    values = {
        "connection_id": connection.pk, "connection_name": connection.name,
        "connection_type": connection.connection_type, "event_type": event_type, "event_name": event_name,
        "path_event_type": path_event_type, "provider_delivery_id": _provider_delivery_id(result, payload),
        "replay_key": replay_key, "signed_timestamp": result.signed_timestamp, "matched_secret": verified.matched,
        "outcome": verified.outcome, "headers": _kept_headers(headers, verified.options),
        "content_type": storable_text(content_type[:100]), "body": body, "payload": payload,
        "payload_escaped": parsed.escaped, "remote_ip": remote_ip,
        "received_at": received_at,
    }
    try:
        delivery_id = delivery_store(values)
    except (DataError, psycopg.DataError, UnicodeError) as exc:
        # Never expected (the payload is stored escaped), but should a value still be refused,
        # the database's message may quote the payload: neither it nor the value is logged.
        logger.error("delivery for connection %s could not be stored: %s (SQLSTATE %s)", connection.pk,
                     type(exc).__name__, getattr(exc, "sqlstate", None) or getattr(exc.__cause__, "sqlstate", None))
        raise DeliveryNotStored(f"delivery for connection {connection.pk} could not be stored") from None
    if delivery_id is None:
        existing = _existing_delivery(connection, replay_key)
        if existing is None:
            # Refused by a conflict that is gone again (the first delivery was deleted meanwhile).
            raise IntegrityError(f"delivery for connection {connection.pk} refused and not found")
        return _duplicate(connection, existing, path_event_type=path_event_type, remote_ip=remote_ip)
    # DEBUG, not INFO: the delivery row is the activity log; a line per delivery costs every request.
    logger.debug("webhook accepted: connection %s event %s delivery %s (secret %s)", connection.pk, event_type,
                 delivery_id, verified.matched)
    return Receipt(202, {"status": "accepted", "delivery_id": delivery_id})


class _DeliveryInsert:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id, ...`` for deliveries, compiled once.

    The ORM's ``save()`` (a model instance, its signals, compiling the INSERT for every row)
    costs more CPU than the baseline receiver's whole request, and it cannot say "a duplicate,
    not an error": a refused insert is an IntegrityError, logged as an ERROR by PostgreSQL.
    The statement is compiled by the ORM once per thread and database (PostgreSQL's
    ``ON CONFLICT DO NOTHING``, SQLite's ``INSERT OR IGNORE``); each value still goes through
    its field's ``get_db_prep_save``, as the ORM's own insert does.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self.fields = tuple(f for f in Delivery._meta.concrete_fields if not f.primary_key)
        self._fields_plain = tuple((f, f.get_internal_type() in _PG_PLAIN_TYPES) for f in self.fields)

    def _sql(self, connection: Any, count: int = 1) -> str:
        """The statement for ``count`` rows, compiled by the ORM once per thread, database and
        count; ``RETURNING id, connection_id, replay_key`` names each stored row (`run_many`)."""
        cache = self._local.__dict__.setdefault("compiled", {})
        key = (connection.alias, connection.vendor, count)
        if key not in cache:
            query = InsertQuery(Delivery, on_conflict=OnConflict.IGNORE)
            query.insert_values(self.fields, [Delivery() for _ in range(count)], raw=False)
            compiler = query.get_compiler(connection=connection)
            compiler.returning_fields = [Delivery._meta.pk, Delivery._meta.get_field("connection"),
                                         Delivery._meta.get_field("replay_key")]
            [(cache[key], _params)] = compiler.as_sql()
        return cache[key]

    def run(self, values: Mapping[str, Any]) -> int | None:
        connection = connections[DEFAULT_DB_ALIAS]
        sql = self._sql(connection)
        if connection.vendor == "postgresql" and not connection.queries_logged:
            # Django's psycopg cursors bind on the client: every value, the raw body too, is
            # quoted into the SQL text in Python and parsed again by the server. A plain psycopg
            # cursor on the same connection binds on the server, and the statement is prepared
            # once per connection (`_raw_cursor`): only the values travel. (Query logging, DEBUG
            # or a test capturing queries, keeps Django's cursor.)
            params = [value if prepare is None else prepare(value, connection)
                      for value, prepare in self._pg_values(values)]

            def insert() -> Any:
                connection.ensure_connection()
                raw = self._raw_cursor(connection.connection)
                raw.execute(sql, params, prepare=True)
                return raw.fetchone()
        else:
            params = [field.get_db_prep_save(values[field.attname] if field.attname in values
                                             else field.get_default(), connection) for field in self.fields]

            def insert() -> Any:
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    return cursor.fetchone()

        row = on_live_connection(insert)
        return None if row is None else row[0]

    def run_many(self, rows: list[Mapping[str, Any]]) -> list[int | None]:
        """Several deliveries in one autocommitted statement (`webhooks.group_commit`), on
        PostgreSQL outside any transaction: ``RETURNING`` names each stored row by its unique
        (connection, replay key), so a row the constraint refused, or the second of two equal
        rows in the batch, gets None (a duplicate) whatever order the rows come back in."""
        if len(rows) == 1:
            return [self.run(rows[0])]
        connection = connections[DEFAULT_DB_ALIAS]
        sql = self._sql(connection, len(rows))
        params = [value if prepare is None else prepare(value, connection)
                  for values in rows for value, prepare in self._pg_values(values)]

        def insert() -> Any:
            connection.ensure_connection()
            raw = self._raw_cursor(connection.connection)
            raw.execute(sql, params, prepare=True)
            return raw.fetchall()

        stored = {(connection_id, replay_key): pk for pk, connection_id, replay_key in on_live_connection(insert)}
        return [stored.pop((values["connection_id"], values["replay_key"]), None) for values in rows]

    def _raw_cursor(self, raw_connection: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
        # One cursor per thread and server connection, reused: building one copies the
        # connection's adapter map. A new connection (a reconnect) gets a new cursor.
        cursor: psycopg.Cursor[Any] | None = getattr(self._local, "cursor", None)
        if cursor is None or cursor.connection is not raw_connection or cursor.closed:
            if raw_connection.prepare_threshold is None:
                # Django turns psycopg's statement preparation off (prepare_threshold=None), and
                # PostgreSQL then parses and plans this 24-column INSERT for every delivery
                # (about 70 us of server CPU). Preparation happens only for the statements that
                # ask for it (``prepare=True``): Django's own cursors bind on the client and
                # never prepare anything.
                raw_connection.prepare_threshold = PREPARE_ONLY_WHEN_ASKED
            cursor = self._local.cursor = psycopg.Cursor(raw_connection)
        return cursor

    def _pg_values(self, values: Mapping[str, Any]) -> list[tuple[Any, Any]]:
        # Strings, numbers, datetimes and UUIDs go to psycopg as they are (choices as their
        # value: psycopg would send an Enum member's name); JSON, bytes and addresses through
        # their field's get_db_prep_save, as the ORM's insert does.
        pairs: list[tuple[Any, Any]] = []
        for model_field, plain in self._fields_plain:
            value = values[model_field.attname] if model_field.attname in values else model_field.get_default()
            if plain:
                pairs.append((value.value if isinstance(value, enum.Enum) else value, None))
            else:
                pairs.append((value, model_field.get_db_prep_save))
        return pairs


# A threshold no statement reaches by repetition: psycopg prepares only on ``prepare=True``.
PREPARE_ONLY_WHEN_ASKED = 2**31 - 1
_PG_PLAIN_TYPES = frozenset({"CharField", "TextField", "BigIntegerField", "IntegerField", "PositiveIntegerField",
                             "DateTimeField", "UUIDField", "ForeignKey", "BooleanField"})
_delivery_insert = _DeliveryInsert()
# Receiver threads of this process storing at the same moment share a statement and a commit.
_group_commit: GroupCommit[Mapping[str, Any], int | None] = GroupCommit(_delivery_insert.run_many)


def delivery_store(values: Mapping[str, Any]) -> int | None:
    """Insert a delivery (``Delivery`` field values by attribute name; the others take their
    defaults) and queue its publication after the commit. Returns its id, or None when the
    unique (connection, replay key) already holds one: a duplicate, and nothing was written.

    Outside a transaction (the web request) the INSERT is one autocommitted statement: durable
    when it returns, one round trip instead of BEGIN/INSERT/COMMIT; on PostgreSQL the threads
    of a threaded worker storing at the same moment share it (`webhooks.group_commit`).
    Inside a caller's transaction the publication waits for the outer commit.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql" and not connection.in_atomic_block and not connection.queries_logged:
        delivery_id = _group_commit.submit(values)
    else:
        delivery_id = _delivery_insert.run(values)
    if delivery_id is not None:
        if connection.in_atomic_block:
            transaction.on_commit(lambda: publication_submit(delivery_id))
        else:
            publication_submit(delivery_id)  # autocommitted: already durable
    return delivery_id


def publication_submit(delivery_id: int) -> None:
    """After the commit: hand the delivery to the dispatcher's thread, so the answer never waits
    on the broker (eager Celery, as in tests, runs the batch task here and now instead)."""
    if delivery_publish_batch_task.app.conf.task_always_eager:
        publication.send_batch([delivery_id])
    else:
        publication.dispatcher.submit(delivery_id)

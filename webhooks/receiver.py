"""The receiver's steps after the body is read: signature, freshness and replay, rate limit,
body, store. The view does the flood guard and the size rule (they come before the body).

Every refusal for "who are you" reasons (unknown connection, no signing secret, a type
without a verifier, a bad, missing or stale signature) is the same 401 with the same body;
the real reason goes to the rejection counters, the bounded sample and the server log.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db import connection as db_connection
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Lower
from django.utils import timezone
from kombu.exceptions import OperationalError

from integrations import services
from integrations.models import CONNECTION_NAME_PATTERN, Connection
from integrations.ratelimit import RateLimitExceeded, get_rate_limiter
from integrations.secrets.base import SecretUnavailable
from integrations.types import get_type
from synthorg.config import get_config
from webhooks.models import Delivery, WebhookEndpoint
from webhooks.rejections import rejection_record
from webhooks.tasks import delivery_publish_task
from webhooks.verifiers import VerificationResult, get_verifier
from webhooks.verifiers.base import body_replay_key

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


@dataclass(frozen=True)
class Receipt:
    """What the view answers: a status, a JSON body and extra headers."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    delivery_id: int | None = None


def unauthorized(*, connection: Connection | None, connection_name: str, reason: str, path_event_type: str,
                 remote_ip: str | None) -> Receipt:
    logger.warning("webhook refused for connection %r: %s (from %s)", connection_name, reason, remote_ip)
    rejection_record(connection=connection, connection_name=connection_name, reason=reason, status=401,
                     path_event_type=path_event_type, remote_ip=remote_ip)
    return Receipt(401, UNAUTHORIZED_BODY)


_NAME_RE = re.compile(CONNECTION_NAME_PATTERN)


# The columns of the connection the receiver uses; the others stay deferred (never read here).
RECEIPT_CONNECTION_FIELDS = ("id", "name", "connection_type", "config", "secret_backend", "secret_id")
_NAME_MARK, _KEY_MARK = "\x00name", "\x00key"
_NOW_MARK = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)


@dataclass(frozen=True)
class _CompiledReceiptQuery:
    sql: str
    params: tuple[Any, ...]  # with the marker values where each request's values go
    prepared_now_mark: Any
    field_names: tuple[str, ...]  # the model's columns, first in the row
    annotations: tuple[tuple[str, int], ...]  # (attribute, position) of the annotated columns
    converters: tuple[tuple[int, tuple[Any, ...], Any], ...]  # (position, converters, expression)


class _ReceiptQuery:
    """The receiver's one read, compiled by the ORM once per thread and database.

    Building and compiling this queryset (and running it through a model iterable) costs more
    CPU per request than the whole baseline receiver. Its SQL never changes, so the ORM compiles
    it once with marker values; each request binds its three parameters, and the row goes
    through the same converters and ``Model.from_db`` the ORM itself uses. Per thread, because
    a compiler and its converters belong to one thread's database connection.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def _build(self) -> _CompiledReceiptQuery:
        endpoint = WebhookEndpoint.objects.filter(connection=OuterRef("pk"), previous_valid_until__gt=_NOW_MARK)
        queryset = (
            Connection.objects.alias(lower_name=Lower("name")).filter(lower_name=_NAME_MARK)
            .only(*RECEIPT_CONNECTION_FIELDS).order_by()
            .annotate(secret_ciphertext=services.secret_ciphertext_subquery(),
                      previous_secret_ciphertext=Subquery(endpoint.values("previous_secret_ciphertext")[:1]),
                      existing_delivery_id=Subquery(Delivery.objects.filter(
                          connection=OuterRef("pk"), replay_key=_KEY_MARK).order_by().values("pk")[:1])))[:1]
        compiler = queryset.query.get_compiler(using=db_connection.alias)
        sql, params = compiler.as_sql()
        select_fields = compiler.klass_info["select_fields"]
        field_names = tuple(compiler.select[i][0].target.attname for i in select_fields)
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        return _CompiledReceiptQuery(
            sql=sql, params=tuple(params),
            prepared_now_mark=_VALID_UNTIL_FIELD.get_db_prep_value(_NOW_MARK, db_connection),
            field_names=field_names, annotations=tuple(compiler.annotation_col_map.items()),
            converters=tuple((position, tuple(functions), expression)
                             for position, (functions, expression) in converters.items()))

    def _compiled(self) -> _CompiledReceiptQuery:
        key = (db_connection.alias, db_connection.vendor)
        cache = self._local.__dict__.setdefault("compiled", {})
        compiled = cache.get(key)
        if compiled is None:
            compiled = cache[key] = self._build()
        return compiled

    def run(self, *, lower_name: str, body_key: str, now: datetime) -> Connection | None:
        query = self._compiled()
        prepared_now = _VALID_UNTIL_FIELD.get_db_prep_value(now, db_connection)
        params = [lower_name if mark == _NAME_MARK else body_key if mark == _KEY_MARK
                  else prepared_now if mark == query.prepared_now_mark else mark for mark in query.params]
        with db_connection.cursor() as cursor:
            cursor.execute(query.sql, params)
            fetched = cursor.fetchone()
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


_VALID_UNTIL_FIELD = WebhookEndpoint._meta.get_field("previous_valid_until")
_receipt_query = _ReceiptQuery()


def connection_for_receipt(name: str, *, body_key: str, now: datetime) -> Connection | None:
    """The connection named ``name`` (case-insensitive, as ``selectors.connection_find``), with
    what the receiver needs next read in the same query instead of three more:

    - ``secret_ciphertext``: its secret record's ciphertext (None without one);
    - ``previous_secret_ciphertext``: the rotated-out signing secret while its grace lasts;
    - ``existing_delivery_id``: a delivery already stored under ``body_key`` (the replay key of
      every scheme that signs no message id), used only after the signature is verified.
    """
    # A name that cannot exist is not looked up (NUL bytes and the like never reach the database).
    if not _NAME_RE.fullmatch(name):
        return None
    return _receipt_query.run(lower_name=name.lower(), body_key=body_key, now=now)


def signing_secrets(connection: Connection, now: datetime) -> list[bytes]:
    """[current, previous]: the previous secret only while its rotation grace lasts.

    Uses the ciphertexts ``connection_for_receipt`` read with the row when they are there;
    decryptions are cached per process by ciphertext, so a rotation is seen at once.
    """
    if hasattr(connection, "previous_secret_ciphertext"):
        current = services.connection_secrets(connection, ciphertext=connection.secret_ciphertext)
        previous_ciphertext = connection.previous_secret_ciphertext or ""
    else:
        current = services.connection_secrets(connection)
        endpoint = WebhookEndpoint.objects.filter(connection=connection, previous_valid_until__gt=now).first()
        previous_ciphertext = endpoint.previous_secret_ciphertext if endpoint is not None else ""
    previous = ""
    if previous_ciphertext:
        previous = services.secret_decrypt_cached(previous_ciphertext).get("signing_secret") or ""
    return [(current.get("signing_secret") or "").encode("utf-8"), previous.encode("utf-8")]


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


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not JSON")


def parse_body(body: bytes, content_type: str) -> dict[str, Any] | None:
    """A JSON object, or a form body (Slack, GitHub's form option); None when neither."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=1000)
        except ValueError:
            return None
        fields: dict[str, Any] = {}
        for key, value in pairs:
            if key in fields:
                existing = fields[key]
                fields[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
            else:
                fields[key] = value
        if set(fields) == {"payload"} and isinstance(fields["payload"], str):
            # Slack interactivity and GitHub's form content type: one `payload` field of JSON.
            return _json_object(fields["payload"])
        return fields or None
    return _json_object(text)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    return value


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
    return str(value)[:200]


def _kept_headers(headers: Mapping[str, str], options: Mapping[str, Any]) -> dict[str, str]:
    names = set(KEPT_HEADERS)
    for key in ("event_header", "timestamp_header"):
        if options.get(key):
            names.add(str(options[key]).lower())
    return {name.lower(): value[:500] for name, value in headers.items() if name.lower() in names}


def _duplicate(connection: Connection, delivery_pk: int, *, path_event_type: str, remote_ip: str | None) -> Receipt:
    Delivery.objects.filter(pk=delivery_pk).update(duplicates=F("duplicates") + 1)
    rejection_record(connection=connection, connection_name=connection.name, reason="duplicate", status=200,
                     path_event_type=path_event_type, remote_ip=remote_ip, outcome="duplicate",
                     delivery_id=delivery_pk)
    return Receipt(200, {"status": "duplicate", "delivery_id": delivery_pk}, delivery_id=delivery_pk)


def delivery_receive(*, connection_name: str, path_event_type: str, body: bytes, headers: Mapping[str, str],
                     content_type: str, remote_ip: str | None, now: float | None = None) -> Receipt:
    """Steps 2-6 of the receiver on the raw body; the caller enforced the flood guard and size."""
    cfg = get_config().integrations.webhooks
    unix_now = time.time() if now is None else now
    received_at = timezone.now() if now is None else datetime.fromtimestamp(unix_now, tz=UTC)

    def refuse(reason: str, connection: Connection | None = None) -> Receipt:
        return unauthorized(connection=connection, connection_name=connection_name, reason=reason,
                            path_event_type=path_event_type, remote_ip=remote_ip)

    # 2. signature
    body_key = body_replay_key(body)
    connection = connection_for_receipt(connection_name, body_key=body_key, now=received_at)
    if connection is None:
        return refuse("unknown_connection")
    scheme, options = scheme_for(connection)
    if scheme is None:
        return refuse("no_verifier", connection)
    try:
        verifier = get_verifier(scheme)
    except KeyError:
        return refuse("no_verifier", connection)
    verify = cfg.verify_signatures
    if not verify and not settings.SYNTHORG_DEV:
        # The system check stops startup on this; a running process still never skips verification.
        logger.error("integrations.webhooks.verify_signatures is false outside development mode; verifying anyway")
        verify = True
    if verify:
        try:
            secrets = signing_secrets(connection, received_at)
        except SecretUnavailable:
            logger.exception("signing secret of connection %s cannot be read", connection.pk)
            return refuse("secret_unavailable", connection)
        result = verifier.verify(body=body, headers=headers, secrets=secrets, options=options, now=unix_now,
                                 tolerance_seconds=cfg.replay_window_seconds)
        if not result.ok:
            # 3 (freshness) is part of the verifier: stale/future timestamps land here too.
            return refuse(result.reason, connection)
        replay_key = result.replay_key or body_key
        matched = "current" if result.secret_index == 0 else "previous"
        outcome = Delivery.Outcome.ACCEPTED
    else:
        result = VerificationResult(ok=True, replay_key=body_key)
        replay_key = body_key
        matched = "none"
        outcome = Delivery.Outcome.ACCEPTED_UNVERIFIED

    # 3. replays: a fast look-up here (read with the connection when the key is the body's hash),
    # the unique constraint at the insert is the authority.
    if replay_key == body_key:
        existing = connection.existing_delivery_id
    else:
        existing = (Delivery.objects.filter(connection=connection, replay_key=replay_key)
                    .values_list("pk", flat=True).first())
    if existing is not None:
        return _duplicate(connection, existing, path_event_type=path_event_type, remote_ip=remote_ip)

    # 4. rate limit per connection, shared by every process through the limiter's store.
    if cfg.rate_limit_rpm:
        try:
            get_rate_limiter().acquire(f"webhook:{connection.pk}", rpm=cfg.rate_limit_rpm,
                                       burst=cfg.rate_limit_rpm - 1, wait=False)
        except RateLimitExceeded as exc:
            rejection_record(connection=connection, connection_name=connection.name, reason="rate_limited",
                             status=429, path_event_type=path_event_type, remote_ip=remote_ip)
            return Receipt(429, {"detail": "Too many deliveries for this connection; retry later.",
                                 "code": "rate_limited"},
                           {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))})

    # 5. body
    payload = parse_body(body, content_type)
    if payload is None:
        rejection_record(connection=connection, connection_name=connection.name, reason="malformed_body",
                         status=400, path_event_type=path_event_type, remote_ip=remote_ip)
        return Receipt(400, {"detail": "The body must be a JSON object or a form-encoded body.",
                             "code": "malformed_body"})
    if connection.connection_type == "slack" and payload.get("type") == "url_verification":
        challenge = payload.get("challenge")
        if isinstance(challenge, str):
            return Receipt(200, {"challenge": challenge})

    # 6. store, then answer
    event_name = provider_event_name(connection.connection_type, scheme, result, payload)[:200]
    event_type = (event_name or UNKNOWN_EVENT) if path_event_type == AUTO_EVENT_TYPE else path_event_type
    delivery = Delivery(
        connection=connection, connection_name=connection.name, connection_type=connection.connection_type,
        event_type=event_type, event_name=event_name, path_event_type=path_event_type,
        provider_delivery_id=_provider_delivery_id(result, payload), replay_key=replay_key,
        signed_timestamp=result.signed_timestamp, matched_secret=matched, outcome=outcome,
        headers=_kept_headers(headers, options), content_type=content_type[:100], body=body, payload=payload,
        remote_ip=remote_ip, received_at=received_at,
    )
    try:
        delivery_store(delivery)
    except IntegrityError:
        # Another process stored the same (connection, replay key) between our look-up and insert.
        existing = Delivery.objects.filter(connection=connection, replay_key=replay_key).values_list(
            "pk", flat=True).first()
        if existing is None:
            raise
        return _duplicate(connection, existing, path_event_type=path_event_type, remote_ip=remote_ip)
    # DEBUG, not INFO: the delivery row is the activity log; a line per delivery costs every request.
    logger.debug("webhook accepted: connection %s event %s delivery %s (secret %s)", connection.pk, event_type,
                 delivery.pk, matched)
    return Receipt(202, {"status": "accepted", "delivery_id": delivery.pk}, delivery_id=delivery.pk)


def delivery_store(delivery: Delivery) -> None:
    """Insert the delivery durably, then enqueue its publication (after the commit).

    Outside a transaction (the web request) the INSERT is one autocommitted statement: durable
    when it returns, one round trip instead of BEGIN/INSERT/COMMIT. Inside a caller's
    transaction it gets a savepoint, so an IntegrityError (a concurrent duplicate) leaves that
    transaction usable, and the enqueue waits for the outer commit.
    """
    if db_connection.in_atomic_block:
        with transaction.atomic():
            delivery.save(force_insert=True)
    else:
        delivery.save(force_insert=True)
    transaction.on_commit(lambda: publication_enqueue(delivery.pk))


def publication_enqueue(delivery_id: int) -> bool:
    """Hand the delivery to Celery; when the broker is down the outbox sweep publishes it later."""
    try:
        # retry=False: a dead broker must cost the sender milliseconds, not kombu's retry loop.
        delivery_publish_task.apply_async((delivery_id,), retry=False)
    except (OperationalError, OSError) as exc:
        logger.warning("broker unavailable, delivery %s left to the outbox sweep: %s", delivery_id, exc)
        return False
    return True


def flood_guard(*, remote_ip: str | None) -> Receipt | None:
    """Step 0: the per-source-address limit, before the body is read."""
    rpm = get_config().integrations.webhooks.flood_rpm_per_ip
    if not rpm or not remote_ip:
        return None
    try:
        # The burst is the whole minute's budget: senders deliver in bursts, a limit per minute
        # must not also space requests evenly (GCRA with no burst would).
        get_rate_limiter().acquire(f"webhook-ip:{remote_ip}", rpm=rpm, burst=rpm - 1, wait=False)
    except RateLimitExceeded as exc:
        rejection_record(connection=None, connection_name="", reason="flood", status=429, path_event_type="",
                         remote_ip=remote_ip)
        return Receipt(429, {"detail": "Too many requests from this address; retry later.", "code": "rate_limited"},
                       {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))})
    return None

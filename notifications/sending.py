"""Sending one alert: claim, (coalesce a burst into a digest), call the sink, record.

Claim, then act (STYLE.md §8.2): the claim is a short transaction that turns the row from
``pending`` (or ``sending`` with an expired lease: its worker died) into ``sending`` for
``SYNTHORG_ALERTS_LEASE_SECONDS``; the network call runs outside any transaction; the result is recorded
in another short transaction, only while our claim still holds. A worker killed mid-send
leaves a ``sending`` row whose lease expires and the sweep sends it again **with the same
id**, which is what every sink sees (Message-ID, webhook-id, Slack metadata): receivers
count distinct ids, so each problem is announced once per sink.

Retries: transient failures (5xx, 429 with ``Retry-After``, timeouts, SMTP 4xx) come back
after an exponential backoff with jitter, for up to ``GIVE_UP_AFTER`` from the alert's
creation; a permanent failure (another 4xx, refused TLS or AUTH) stops at once. Every
attempt is an `AlertAttempt` row.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications import secrets as sink_secrets
from notifications.messages import Message, message_build
from notifications.models import Alert, AlertAttempt, NotificationSink, Problem
from notifications.sinks import KINDS
from notifications.sinks.email import message_id
from synthorg.egress import ExternalServiceError, PermanentError, TransientError

logger = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 10.0
GIVE_UP_AFTER = timedelta(hours=24)
BACKOFF_BASE_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 3600.0
# A digest needs at least this many alerts pending for one sink; fewer go one by one.
DIGEST_MIN_ALERTS = 3
DIGEST_MAX_ALERTS = 1000
COALESCABLE = (Alert.Kind.OPENED, Alert.Kind.RESOLVED, Alert.Kind.REMINDER)


@dataclass(frozen=True)
class SendOutcome:
    result: str  # sent | retry | failed | not_claimed | coalesced
    alert_id: str
    retry_at: datetime | None = None
    error: str = ""


def backoff_seconds(attempts: int, *, retry_after: float | None = None,
                    rand: Callable[[float, float], float] = random.uniform) -> float:
    """Exponential with full-ish jitter (half to all of the step), at least the peer's Retry-After."""
    step = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    wait = rand(step / 2, step)
    return max(wait, retry_after or 0.0)


def _claimable(now: datetime, early: timedelta = timedelta(0)) -> Q:
    return (Q(status=Alert.Status.PENDING, next_attempt_at__lte=now + early)
            | Q(status=Alert.Status.SENDING, claimed_until__lt=now))


def _claim(alert_id: Any, now: datetime, *, force: bool, early: timedelta) -> Alert | None:
    """Own the alert (and, for a burst, the digest it joins) until the lease ends."""
    with transaction.atomic():
        query = Alert.objects.select_for_update(skip_locked=True).select_related("sink").filter(pk=alert_id)
        query = query.filter(Q(status=Alert.Status.PENDING) | Q(status=Alert.Status.SENDING, claimed_until__lt=now)) \
            if force else query.filter(_claimable(now, early))
        alert = query.first()
        if alert is None:
            return None
        lease = now + timedelta(seconds=settings.SYNTHORG_ALERTS_LEASE_SECONDS)
        if alert.kind in COALESCABLE and alert.attempts == 0:
            digest = _coalesce(alert, now, lease)
            if digest is not None:
                return digest
        alert.status, alert.claimed_until, alert.attempts = Alert.Status.SENDING, lease, alert.attempts + 1
        alert.save(update_fields=["status", "claimed_until", "attempts"])
        return alert


def _coalesce(alert: Alert, now: datetime, lease: datetime) -> Alert | None:
    """Fold the burst pending for this sink into one digest alert (claimed by us), or None."""
    siblings = list(Alert.objects.select_for_update(skip_locked=True)
                    .filter(sink_id=alert.sink_id, status=Alert.Status.PENDING, attempts=0, kind__in=COALESCABLE)
                    .exclude(pk=alert.pk).order_by("created_at")
                    .values_list("pk", flat=True)[:DIGEST_MAX_ALERTS - 1])
    if len(siblings) + 1 < DIGEST_MIN_ALERTS:
        return None
    digest = Alert.objects.create(sink=alert.sink, kind=Alert.Kind.DIGEST, status=Alert.Status.SENDING,
                                  attempts=1, created_at=now, next_attempt_at=now, claimed_until=lease)
    Alert.objects.filter(pk__in=[alert.pk, *siblings]).update(status=Alert.Status.COALESCED, digest=digest)
    logger.info("%d alerts for sink %s coalesced into digest %s", len(siblings) + 1, alert.sink_id, digest.pk)
    return digest


def _problems_of(alert: Alert) -> list[Problem]:
    if alert.kind == Alert.Kind.DIGEST:
        ids = Alert.objects.filter(digest=alert).values_list("problem_id", flat=True)
        return list(Problem.objects.select_related("rule").filter(pk__in=list(ids)).order_by("first_seen_at", "pk"))
    return [Problem.objects.select_related("rule").get(pk=alert.problem_id)] if alert.problem_id else []


def thread_root(alert: Alert) -> str | None:
    """The Message-ID of the problem's first alert to this sink (threads one problem's mail)."""
    if alert.problem_id is None or alert.kind in (Alert.Kind.OPENED, Alert.Kind.DIGEST):
        return None
    first = (Alert.objects.filter(problem_id=alert.problem_id, sink_id=alert.sink_id, kind=Alert.Kind.OPENED)
             .order_by("created_at").values_list("pk", flat=True).first())
    return message_id(str(first)) if first else None


def sink_values(sink: NotificationSink) -> dict[str, Any]:
    """The connection's values (config with the type's defaults and its secrets) plus the sink's own secrets."""
    values: dict[str, Any] = {}
    kind = KINDS[sink.kind]
    if kind.connection_type is not None:
        if sink.connection is None:
            raise PermanentError(f"sink {sink.name} has no connection (it was deleted)")
        if sink.connection.connection_type != kind.connection_type:
            raise PermanentError(f"sink {sink.name} needs a {kind.connection_type} connection")
        from integrations.services import connection_credentials
        from integrations.types import get_type

        ctype = get_type(sink.connection.connection_type)
        values.update({f.name: f.default for f in ctype.fields if f.default is not None})
        values.update(connection_credentials(sink.connection))
    values.update(sink_secrets.sink_secrets_read(sink))
    return values


def deliver(sink: NotificationSink, message: Message, *, root: str | None) -> int | None:
    """One send through the sink's kind, under its connection's rate limit."""
    from integrations.secrets.base import SecretBackendUnavailable

    kind = KINDS[sink.kind]
    try:
        values = sink_values(sink)
    except SecretBackendUnavailable as exc:  # the secret manager is down: the alert waits, not fails
        raise TransientError(f"sink {sink.name}: secret backend unavailable",
                             retry_after=exc.retry_after) from None
    if sink.connection is None:
        return kind.send(sink=sink, message=message, values=values, thread_root=root, timeout=SEND_TIMEOUT_SECONDS)
    from integrations.ratelimit import RateLimitExceeded, with_connection_rate_limit

    @with_connection_rate_limit("connection", max_wait=SEND_TIMEOUT_SECONDS)
    def limited(connection: Any) -> int | None:
        return kind.send(sink=sink, message=message, values=values, thread_root=root,
                         timeout=SEND_TIMEOUT_SECONDS)

    try:
        return limited(sink.connection)
    except RateLimitExceeded as exc:  # our own limit for this connection: not the sink's fault
        raise TransientError(f"connection {sink.connection.pk} rate limit", retry_after=exc.retry_after) from None


def alert_send(*, alert_id: Any, now: datetime | None = None, force: bool = False,
               early_seconds: float = 0.0) -> SendOutcome:
    """Send one alert if it is due (``force``: even before its ``next_attempt_at``;
    ``early_seconds``: a task whose countdown ran out on a worker whose clock is a little
    ahead still sends). Safe twice."""
    now = now or timezone.now()
    alert = _claim(alert_id, now, force=force, early=timedelta(seconds=early_seconds))
    if alert is None:
        current = Alert.objects.filter(pk=alert_id).values_list("status", flat=True).first()
        return SendOutcome("coalesced" if current == Alert.Status.COALESCED else "not_claimed", str(alert_id))
    started = timezone.now()
    status_code: int | None = None
    error: ExternalServiceError | None = None
    try:
        message = message_build(alert, problems=_problems_of(alert), now=now)
        status_code = deliver(alert.sink, message, root=thread_root(alert))
    except ExternalServiceError as exc:
        error = exc
    except Exception as exc:  # a defect or an unexpected library error: retried, never lost
        logger.exception("Sending alert %s failed unexpectedly", alert.pk)
        error = TransientError(f"unexpected {exc.__class__.__name__}")
    return _record(alert, now=now, started=started, status_code=status_code, error=error)


def _record(alert: Alert, *, now: datetime, started: datetime, status_code: int | None,
            error: ExternalServiceError | None) -> SendOutcome:
    finished = timezone.now()
    retry_after = getattr(error, "retry_after", None)
    with transaction.atomic():
        mine = Alert.objects.select_for_update().filter(pk=alert.pk, status=Alert.Status.SENDING,
                                                        claimed_until=alert.claimed_until)
        AlertAttempt.objects.create(alert_id=alert.pk, number=alert.attempts, started_at=started,
                                    finished_at=finished, status_code=status_code or getattr(error, "status", None),
                                    outcome="sent" if error is None else (
                                        "permanent" if isinstance(error, PermanentError) else "transient"),
                                    retry_after=retry_after, error=str(error)[:500] if error else "")
        if error is None:
            mine.update(status=Alert.Status.SENT, sent_at=finished, claimed_until=None, last_error="")
            return SendOutcome("sent", str(alert.pk))
        message = str(error)[:500]
        retry_at = now + timedelta(seconds=backoff_seconds(alert.attempts, retry_after=retry_after))
        if isinstance(error, PermanentError) or retry_at > alert.created_at + GIVE_UP_AFTER:
            mine.update(status=Alert.Status.FAILED, claimed_until=None, last_error=message)
            logger.warning("Alert %s failed for good after %d attempts: %s", alert.pk, alert.attempts, message)
            return SendOutcome("failed", str(alert.pk), error=message)
        mine.update(status=Alert.Status.PENDING, claimed_until=None, next_attempt_at=retry_at, last_error=message)
    logger.info("Alert %s attempt %d failed (%s); next at %s", alert.pk, alert.attempts, message, retry_at)
    return SendOutcome("retry", str(alert.pk), retry_at=retry_at, error=message)


def alerts_due(*, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Alerts the sweep should (re)send: due retries, and claims whose worker died."""
    now = now or timezone.now()
    return [str(pk) for pk in Alert.objects.filter(_claimable(now)).order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]]

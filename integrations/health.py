"""Probe connections and record what was seen: the only writer of health state.

One probe = build the context (read the row, decrypt the secrets) → run the type's
``probe`` on a thread with a hard deadline (network only, no database) → record the
result in one short transaction that locks the connection row. Recording reads the
failure count from the locked row, so a scheduled probe and an on-demand one never lose
each other's increment, and the smoothing state lives in the database, shared by every
process and kept across restarts.

Smoothing: a healthy result resets the failure count and makes the connection
``healthy``; each failed result (``degraded`` or ``unhealthy``) adds one, and the status
becomes ``degraded`` from ``degraded_threshold`` failures and ``unhealthy`` from
``unhealthy_threshold``. An ``unknown`` result (the check does not apply) resets the
count and sets ``unknown``. Every result is kept in ``HealthEvent`` (the last
``history_length`` per connection); a change of smoothed status also writes an audit event.

No scheduling here: `integrations.prober` decides what is due.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connections as db_connections
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from integrations import selectors
from integrations.models import Connection, HealthEvent
from integrations.secrets.base import SecretBackendUnavailable, SecretUnavailable
from integrations.types import get_type
from integrations.types.probing import (
    DEGRADED,
    DETAIL_MAX_CHARS,
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    HealthResult,
    ProbeContext,
)
from synthorg import events
from synthorg.audit import audit_record
from synthorg.config import get_config
from synthorg.errors import NotFound, SynthorgError
from synthorg.log_format import bound_connection
from synthorg.metrics import HEALTH_CHECK_SECONDS

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"
# The detail of a check that could not read its secrets because the secret manager is down;
# it starts with "secrets unavailable" so the secrets.unavailable alert (notifications) sees it.
SECRET_BACKEND_DOWN = "secrets unavailable: secret backend unavailable"  # noqa: S105 - a message
# A probe's own timeouts bound each socket operation; this extra margin bounds the whole
# check even when a peer trickles bytes slowly enough to reset every socket timeout.
DEADLINE_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class ProbeOutcome:
    """A probe's raw result and the smoothed state it led to."""

    connection_id: int
    name: str
    result: HealthResult
    status: str
    previous_status: str
    consecutive_failures: int
    cached: bool = False

    @property
    def changed(self) -> bool:
        return self.status != self.previous_status

    def as_dict(self) -> dict[str, Any]:
        return {"connection": self.name, "status": self.status, "previous_status": self.previous_status,
                "consecutive_failures": self.consecutive_failures, "cached": self.cached,
                "result": self.result.as_dict()}


# --- smoothing (pure) -----------------------------------------------------------------------

def smooth(*, previous_status: str, failures: int, result_status: str, degraded_threshold: int,
           unhealthy_threshold: int) -> tuple[str, int]:
    """(new status, new consecutive failure count) after one result."""
    if result_status == HEALTHY:
        return HEALTHY, 0
    if result_status == UNKNOWN:
        return UNKNOWN, 0
    failures += 1
    if failures >= unhealthy_threshold:
        return UNHEALTHY, failures
    if failures >= degraded_threshold:
        return DEGRADED, failures
    # Below the degraded threshold one failure is not yet news.
    return previous_status, failures


# --- probing (no database writes) ------------------------------------------------------------

def redact(text: str, secrets: Iterable[Any]) -> str:
    """``text`` without any secret value in it, cut to what the row holds.

    Probes build their own messages and never copy a credential; this is the last line of
    defence against a driver or a peer echoing one.
    """
    for value in secrets:
        if isinstance(value, str) and len(value) >= 4 and value in text:
            text = text.replace(value, REDACTED)
    return text[:DETAIL_MAX_CHARS]


def probe_context(connection: Connection) -> ProbeContext | HealthResult:
    """The context for ``connection``'s check, or the result when it cannot even be built."""
    try:
        ctype = get_type(connection.connection_type)
    except KeyError:
        return HealthResult(UNKNOWN, f"unknown connection type {connection.connection_type!r}")
    if ctype.probe is None:
        return HealthResult(UNKNOWN, f"not applicable: the {ctype.name} type has no health check")
    try:
        from integrations.services import connection_secrets

        secrets = connection_secrets(connection)
    except SecretBackendUnavailable:
        # The secret manager is down, not the remote service: recorded, status left as it is.
        return HealthResult(UNKNOWN, SECRET_BACKEND_DOWN)
    except (SecretUnavailable, SynthorgError) as exc:
        return HealthResult(UNHEALTHY, f"secrets unavailable: {exc.__class__.__name__}")
    defaults = {f.name: f.default for f in ctype.fields if f.default is not None}
    values = {**defaults, **connection.config, **secrets}
    return ProbeContext(connection_id=connection.pk, name=connection.name, values=values,
                        timeout=float(get_config().integrations.health.timeout_seconds), connection=connection)


def _run_probe(connection: Connection, context: ProbeContext) -> HealthResult:
    ctype = get_type(connection.connection_type)
    assert ctype.probe is not None  # probe_context returned a context, so there is a probe
    started = time.perf_counter()
    try:
        with bound_connection(connection.pk):  # the check's log lines carry the connection id
            return ctype.probe(context)
    except Exception as exc:
        # A defect in a check must not stop the sweep; it is a failed check with a logged trace.
        logger.exception("Health check of connection %s raised", connection.pk,
                         extra={"connection_id": connection.pk})
        return HealthResult(UNHEALTHY, f"the check failed unexpectedly ({exc.__class__.__name__})")
    finally:
        HEALTH_CHECK_SECONDS.labels(connection.connection_type).observe(time.perf_counter() - started)
        # Checks that read the database (oauth_app) opened a connection on this thread.
        db_connections.close_all()


def probe_with_deadline(connection: Connection, context: ProbeContext) -> HealthResult:
    """Run the check on its own daemon thread and wait at most timeout + grace.

    A check that overruns is reported ``unhealthy`` and left to finish on its own (its
    socket timeouts end it); nothing waits for it, so a hanging peer never blocks a sweep.
    """
    box: list[HealthResult] = []
    started = time.monotonic()
    thread = threading.Thread(target=lambda: box.append(_run_probe(connection, context)),
                              name=f"health-probe-{connection.pk}", daemon=True)
    thread.start()
    thread.join(context.timeout + DEADLINE_GRACE_SECONDS)
    latency_ms = int((time.monotonic() - started) * 1000)
    if not box:
        return HealthResult(UNHEALTHY, f"the check did not finish within {context.timeout:g} s",
                            checked_at=timezone.now(), latency_ms=latency_ms)
    return box[0].stamped(checked_at=timezone.now(), latency_ms=latency_ms)


# --- recording ------------------------------------------------------------------------------

def _interval_seconds(connection: Connection) -> int:
    return connection.health_check_interval_seconds or get_config().integrations.health.check_interval_seconds


def health_record(*, connection_id: int, result: HealthResult, actor: Any = None,
                  request: HttpRequest | None = None, secrets: Iterable[Any] = ()) -> ProbeOutcome | None:
    """Apply ``result`` to the connection's smoothed state; None when the connection is gone."""
    health = get_config().integrations.health
    checked_at = result.checked_at or timezone.now()
    detail = redact(result.detail, secrets)
    with transaction.atomic():
        connection = Connection.objects.select_for_update().filter(pk=connection_id).first()
        if connection is None:
            return None
        previous = connection.health_status
        status, failures = smooth(previous_status=previous, failures=connection.health_consecutive_failures,
                                  result_status=result.status, degraded_threshold=health.degraded_threshold,
                                  unhealthy_threshold=health.unhealthy_threshold)
        backend_down = result.detail == SECRET_BACKEND_DOWN
        if backend_down:  # no verdict on the remote service: neither toward unhealthy nor back
            status, failures = previous, connection.health_consecutive_failures
        next_check = checked_at + timedelta(seconds=_interval_seconds(connection))
        if result.retry_after:
            # The peer asked us to stay away (429): the next probe waits at least that long.
            next_check = max(next_check, checked_at + timedelta(seconds=result.retry_after))
        connection.health_status = status
        connection.health_consecutive_failures = failures
        connection.health_checked_at = checked_at
        connection.health_latency_ms = result.latency_ms
        connection.health_last_error = detail if backend_down or result.status not in (HEALTHY, UNKNOWN) else ""
        connection.health_next_check_at = next_check
        connection.health_probe_lease_until = None
        fields = ["health_status", "health_consecutive_failures", "health_checked_at", "health_latency_ms",
                  "health_last_error", "health_next_check_at", "health_probe_lease_until"]
        if result.credential_expires_at is not None and result.credential_expires_at != connection.expires_at:
            connection.expires_at = result.credential_expires_at  # the peer's word (GitHub's expiry header)
            fields.append("expires_at")
        connection.save(update_fields=fields)
        HealthEvent.objects.create(connection=connection, checked_at=checked_at, result_status=result.status,
                                   status=status, previous_status=previous, latency_ms=result.latency_ms,
                                   detail=detail)
        _trim_history(connection.pk, health.history_length)
        if status != previous:
            audit_record(action="connection.health_changed", target=connection.name, target_type="connection",
                         outcome="success" if status in (HEALTHY, UNKNOWN) else "failure",
                         reason=detail[:255], actor=actor if actor is not None else "health-prober",
                         request=request,
                         details={"from": previous, "to": status, "consecutive_failures": failures,
                                  "result": result.status, "latency_ms": result.latency_ms})
            _announce_health_change(connection, previous=previous, status=status, detail=detail)
    if status != previous:
        logger.info("connection %s health %s -> %s (%s)", connection.pk, previous, status, detail)
    _pause_on_retry_after(connection, result)
    return ProbeOutcome(connection_id=connection.pk, name=connection.name, result=result.__class__(
        status=result.status, detail=detail, latency_ms=result.latency_ms, checked_at=checked_at,
        retry_after=result.retry_after), status=status, previous_status=previous, consecutive_failures=failures)


def _announce_health_change(connection: Connection, *, previous: str, status: str, detail: str) -> None:
    """Tell alerting (issue 16) in this transaction: unhealthy opens a problem, healthy ends it.

    Smoothing already damps flapping; degraded and unknown neither open nor resolve one.
    """
    if status not in (UNHEALTHY, HEALTHY) or (status == HEALTHY and previous == UNKNOWN):
        return
    events.emit(events.CONNECTION_UNHEALTHY, subject=f"connection:{connection.pk}", active=status == UNHEALTHY,
                title=f"Connection {connection.name} is unhealthy", connection_id=connection.pk,
                connection_type=connection.connection_type,
                details={"connection": connection.name, "from": previous, "to": status, "detail": detail})


def _trim_history(connection_id: int, keep: int) -> None:
    stale = (HealthEvent.objects.filter(connection_id=connection_id).order_by("-checked_at", "-id")
             .values_list("pk", flat=True)[keep:])
    HealthEvent.objects.filter(pk__in=list(stale)).delete()


def _pause_on_retry_after(connection: Connection, result: HealthResult) -> None:
    """A remote Retry-After pauses the connection's calls for every caller, not only the prober."""
    if not result.retry_after:
        return
    from integrations.ratelimit import connection_rate_limit_key, get_rate_limiter

    try:
        get_rate_limiter().pause(connection_rate_limit_key(connection), result.retry_after)
    except Exception:
        # The health result is recorded either way; a limiter outage must not hide it.
        logger.warning("Could not pause rate-limit key of connection %s", connection.pk, exc_info=True)


# --- the operations ---------------------------------------------------------------------------

def _secret_values(connection: Connection, context: ProbeContext) -> list[Any]:
    """Only the secret fields are redacted from a stored detail: hosts and URLs stay readable."""
    names = get_type(connection.connection_type).secret_field_names
    return [context.values[name] for name in names if name in context.values]


def connection_probe(*, connection: Connection, actor: Any = None,
                     request: HttpRequest | None = None) -> ProbeOutcome | None:
    """Probe one connection now (bounded by ``health.timeout_seconds``) and record the result."""
    context = probe_context(connection)
    if isinstance(context, HealthResult):
        result = context.stamped(checked_at=timezone.now(), latency_ms=0)
        secrets: Iterable[Any] = ()
    else:
        result = probe_with_deadline(connection, context)
        secrets = _secret_values(connection, context)
    return health_record(connection_id=connection.pk, result=result, actor=actor, request=request, secrets=secrets)


def latest_outcome(connection: Connection) -> ProbeOutcome | None:
    """The last recorded result as an outcome (``cached=True``), or None before the first probe."""
    event = connection.health_events.order_by("-checked_at", "-id").first()
    if event is None:
        return None
    result = HealthResult(event.result_status, event.detail, event.latency_ms, event.checked_at)
    return ProbeOutcome(connection_id=connection.pk, name=connection.name, result=result,
                        status=connection.health_status, previous_status=event.previous_status,
                        consecutive_failures=connection.health_consecutive_failures, cached=True)


def connection_health_check(*, name: str, force: bool = False, actor: Any = None,
                            request: HttpRequest | None = None) -> ProbeOutcome:
    """The on-demand check: a result fresher than ``health.fresh_result_seconds`` is returned
    as it is (dashboards polling this must not spend a SaaS quota); otherwise, or with
    ``force``, probe now. Either way the smoothed status comes from the shared state.
    """
    connection = selectors.connection_get(name)
    window = get_config().integrations.health.fresh_result_seconds
    if not force and window and connection.health_checked_at is not None:
        if timezone.now() - connection.health_checked_at < timedelta(seconds=window):
            cached = latest_outcome(connection)
            if cached is not None:
                return cached
    outcome = connection_probe(connection=connection, actor=actor, request=request)
    if outcome is None:
        raise NotFound(f"No connection named {name!r}.", code="connection_not_found")  # deleted meanwhile
    if outcome.result.detail == SECRET_BACKEND_DOWN:
        raise SecretBackendUnavailable()  # recorded above; the caller gets 503 + Retry-After
    return outcome


@dataclass
class _InFlight:
    connection: Connection
    context: ProbeContext
    thread: threading.Thread
    started: float
    box: list[HealthResult]

    @property
    def deadline(self) -> float:
        return self.started + self.context.timeout + DEADLINE_GRACE_SECONDS


def connections_probe(connection_ids: Iterable[int], *, threads: int, actor: Any = None) -> list[ProbeOutcome]:
    """Probe many connections with up to ``threads`` checks in flight; record each as it ends.

    The database work (reading rows, decrypting, recording) stays on the calling thread;
    only the network checks run concurrently, so a chunk holds one database connection.
    A check still running at its deadline is recorded as timed out and left behind.
    """
    rows = list(Connection.objects.filter(pk__in=list(connection_ids)))
    slots = threading.BoundedSemaphore(max(1, threads))
    in_flight: list[_InFlight] = []
    outcomes: list[ProbeOutcome] = []

    def record(connection: Connection, result: HealthResult, secrets: Iterable[Any]) -> None:
        outcome = health_record(connection_id=connection.pk, result=result, secrets=secrets, actor=actor)
        if outcome is not None:
            outcomes.append(outcome)

    def run(connection: Connection, context: ProbeContext, box: list[HealthResult]) -> None:
        try:
            started = time.monotonic()
            result = _run_probe(connection, context)
            box.append(result.stamped(checked_at=timezone.now(),
                                      latency_ms=int((time.monotonic() - started) * 1000)))
        finally:
            slots.release()

    def record_finished(*, final: bool) -> None:
        for item in list(in_flight):
            if item.box:
                record(item.connection, item.box[0], _secret_values(item.connection, item.context))
            elif final:
                latency_ms = int((time.monotonic() - item.started) * 1000)
                record(item.connection, HealthResult(
                    UNHEALTHY, f"the check did not finish within {item.context.timeout:g} s",
                    checked_at=timezone.now(), latency_ms=latency_ms), ())
            else:
                continue
            in_flight.remove(item)

    for connection in rows:
        context = probe_context(connection)
        if isinstance(context, HealthResult):
            record(connection, context.stamped(checked_at=timezone.now(), latency_ms=0), ())
            continue
        slots.acquire()
        box: list[HealthResult] = []
        thread = threading.Thread(target=run, args=(connection, context, box), daemon=True,
                                  name=f"health-probe-{connection.pk}")
        thread.start()
        in_flight.append(_InFlight(connection, context, thread, time.monotonic(), box))
        record_finished(final=False)
    for item in list(in_flight):
        item.thread.join(max(0.0, item.deadline - time.monotonic()))
        record_finished(final=False)
    record_finished(final=True)
    return outcomes


def connection_health_list(*, status: str | None = None) -> Any:
    """Every connection's current health, for the list endpoint (no probing)."""
    qs = Connection.objects.order_by("name")
    if status:
        qs = qs.filter(health_status=status)
    return qs.only(
        "name", "connection_type", "health_check_enabled", "health_status", "health_checked_at",
        "health_consecutive_failures", "health_last_error", "health_latency_ms", "health_next_check_at",
        "health_check_interval_seconds")

"""Problems and the alert outbox: open, resolve, remind, acknowledge.

Every function here runs inside the caller's transaction (a health transition, a token
write, the periodic evaluation): the problem's change and its `Alert` rows commit together
with the state change that caused them, and the send tasks are queued on commit.

No storms: one live problem per (rule, subject) (a partial unique constraint), one alert
per sink when it opens and one when it resolves; reminders only when the rule asks for
them and nobody acknowledged the problem. Bursts become digests at send time
(`notifications.sending`).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from notifications.event_types import EVENT_TYPES, param
from notifications.models import Alert, AlertRule, NotificationSink, Problem
from synthorg import events
from synthorg.events import Event

logger = logging.getLogger(__name__)

HISTORY_LENGTH = 50
# Alerts wait this long before their first send, so a burst (500 connections failing in one
# sweep) is pending together and leaves as one digest per sink.
DIGEST_WINDOW_SECONDS = 5.0

LIVE = (Problem.State.PENDING, Problem.State.OPEN)


def _history(problem: Problem, what: str, now: datetime, **extra: Any) -> None:
    problem.history = [*problem.history, {"at": now.isoformat(), "what": what, **extra}][-HISTORY_LENGTH:]


def rules_for(event: str, *, connection_id: int | None = None, connection_type: str = "") -> list[AlertRule]:
    """Enabled rules that pick ``event`` and whose connection filters accept the connection."""
    rules = []
    for rule in AlertRule.objects.filter(enabled=True).prefetch_related("connections"):
        if event not in (rule.events or []):
            continue
        if rule.connection_types and connection_type not in rule.connection_types:
            continue
        chosen = {c.pk for c in rule.connections.all()}
        if chosen and connection_id not in chosen:
            continue
        rules.append(rule)
    return rules


def rule_sinks(rule: AlertRule) -> list[NotificationSink]:
    """The rule's sinks; a rule naming none sends to every enabled sink (the default rules do,
    so they start working the moment an operator creates a sink)."""
    chosen = list(rule.sinks.filter(enabled=True))
    if chosen or rule.sinks.exists():
        return chosen
    return list(NotificationSink.objects.filter(enabled=True))


def alerts_enqueue(problem: Problem | None, kind: str, sinks: Iterable[NotificationSink], *,
                   now: datetime, delay: float = DIGEST_WINDOW_SECONDS) -> list[Alert]:
    alerts = [Alert(problem=problem, sink=sink, kind=kind, created_at=now,
                    next_attempt_at=now + timedelta(seconds=delay)) for sink in sinks]
    if not alerts:
        return []
    Alert.objects.bulk_create(alerts)
    ids = [str(a.id) for a in alerts]

    def send() -> None:
        from notifications.tasks import alert_send_task

        for alert_id in ids:
            try:
                alert_send_task.apply_async((alert_id,), countdown=delay, retry=False)
            except Exception:  # a broker outage: the sweep sends it (the row is committed)
                logger.warning("Could not queue alert %s; the sweep will send it", alert_id, exc_info=True)
                return

    transaction.on_commit(send)
    return alerts


def problem_open(rule: AlertRule, *, event: str, subject: str, title: str, now: datetime,
                 connection_id: int | None = None, connection_name: str = "",
                 details: dict[str, Any] | None = None, pending: bool = False) -> Problem | None:
    """Open (or keep) the live problem of (rule, subject); None when one was already live."""
    live = Problem.objects.select_for_update().filter(rule=rule, subject=subject, state__in=LIVE).first()
    if live is not None:
        return None
    problem = Problem(rule=rule, event=event, subject=subject, title=title[:300], connection_id=connection_id,
                      connection_name=connection_name[:128], details=details or {}, first_seen_at=now,
                      state=Problem.State.PENDING if pending else Problem.State.OPEN,
                      opened_at=None if pending else now)
    _history(problem, "seen" if pending else "opened", now)
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction survives a lost race
            problem.save()
    except IntegrityError:
        return None  # another process opened it first; its alert is on its way
    if not pending:
        alerts_enqueue(problem, Alert.Kind.OPENED, rule_sinks(rule), now=now)
    return problem


def problem_promote(problem: Problem, *, now: datetime) -> None:
    """A pending problem whose condition lasted long enough is announced."""
    problem.state = Problem.State.OPEN
    problem.opened_at = now
    _history(problem, "opened", now)
    problem.save(update_fields=["state", "opened_at", "history"])
    alerts_enqueue(problem, Alert.Kind.OPENED, rule_sinks(problem.rule), now=now)


def problem_resolve(problem: Problem, *, now: datetime, reason: str = "") -> None:
    was_open = problem.state == Problem.State.OPEN
    problem.state = Problem.State.RESOLVED
    problem.resolved_at = now
    _history(problem, "resolved", now, **({"reason": reason} if reason else {}))
    problem.save(update_fields=["state", "resolved_at", "history"])
    # Nothing was announced for a pending problem, so nothing is resolved aloud either.
    if was_open:
        alerts_enqueue(problem, Alert.Kind.RESOLVED, rule_sinks(problem.rule), now=now)


def event_record(event: Event, *, now: datetime | None = None) -> None:
    """The `synthorg.events` listener: open or resolve the problems of a transition."""
    if event.name == events.CONNECTION_DELETED:
        now = now or timezone.now()
        for problem in Problem.objects.select_for_update().select_related("rule").filter(
                connection_id=event.connection_id, state__in=LIVE):
            problem_resolve(problem, now=now, reason="connection deleted")
        return
    if event.name not in EVENT_TYPES:
        logger.warning("Unknown event %r ignored", event.name)
        return
    now = now or timezone.now()
    for rule in rules_for(event.name, connection_id=event.connection_id, connection_type=event.connection_type):
        if event.active:
            problem_open(rule, event=event.name, subject=event.subject, title=event.title or event.subject,
                         now=now, connection_id=event.connection_id,
                         connection_name=str(event.details.get("connection", "")), details=event.details)
        else:
            live = Problem.objects.select_for_update().filter(rule=rule, subject=event.subject,
                                                              state__in=LIVE).first()
            if live is not None:
                problem_resolve(live, now=now)


def condition_apply(event: str, active: dict[str, dict[str, Any]], *, now: datetime) -> None:
    """Make the live problems of an evaluated ``event`` match ``active`` (subject -> facts).

    Facts: ``title``, optional ``connection_id``/``connection_type``/``connection``, ``details``.
    """
    from notifications.conditions import ACCEPTS

    spec = EVENT_TYPES[event]
    accepts = ACCEPTS.get(event)
    for rule in AlertRule.objects.filter(enabled=True).prefetch_related("connections"):
        if event not in (rule.events or []):
            continue
        chosen = {c.pk for c in rule.connections.all()}
        wanted = {subject: facts for subject, facts in active.items()
                  if (not rule.connection_types or facts.get("connection_type") in rule.connection_types)
                  and (not chosen or facts.get("connection_id") in chosen)
                  and (accepts is None or accepts(rule, facts, now))}
        live = {p.subject: p for p in Problem.objects.select_for_update().filter(rule=rule, event=event,
                                                                                   state__in=LIVE)}
        for subject, problem in live.items():
            if subject not in wanted:
                problem_resolve(problem, now=now)
        minutes = param(rule.params or {}, event, spec.duration_param) if spec.duration_param else 0
        for subject, facts in wanted.items():
            problem = live.get(subject)
            if problem is None:
                problem_open(rule, event=event, subject=subject, title=facts.get("title", subject), now=now,
                             connection_id=facts.get("connection_id"),
                             connection_name=str(facts.get("connection", "")),
                             details=facts.get("details", {}), pending=bool(minutes))
                if minutes:
                    continue
            elif (problem.state == Problem.State.PENDING
                  and problem.first_seen_at <= now - timedelta(minutes=float(minutes))):
                problem_promote(problem, now=now)


def problems_orphaned_resolve(*, now: datetime) -> int:
    """A connection deleted while its problem is live resolves the problem (the FK went NULL)."""
    orphans = list(Problem.objects.select_for_update().filter(state__in=LIVE, connection__isnull=True)
                   .exclude(connection_name=""))
    for problem in orphans:
        problem_resolve(problem, now=now, reason="connection deleted")
    return len(orphans)


def reminders_enqueue(*, now: datetime) -> int:
    """Open, unacknowledged problems whose rule asks for reminders and whose interval passed."""
    count = 0
    candidates = (Problem.objects.select_for_update(skip_locked=True).select_related("rule")
                  .filter(state=Problem.State.OPEN, acknowledged_at__isnull=True,
                          rule__reminder_interval_seconds__isnull=False))
    for problem in candidates:
        interval = timedelta(seconds=problem.rule.reminder_interval_seconds or 0)
        last = problem.last_reminded_at or problem.opened_at or problem.first_seen_at
        if not interval or last + interval > now:
            continue
        problem.last_reminded_at = now
        _history(problem, "reminded", now)
        problem.save(update_fields=["last_reminded_at", "history"])
        alerts_enqueue(problem, Alert.Kind.REMINDER, rule_sinks(problem.rule), now=now)
        count += 1
    return count


def live_problem_filter() -> Q:
    return Q(state__in=LIVE)

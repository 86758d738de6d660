"""The operations on sinks, rules and problems: one function per user-visible operation,
shared by the API, the admin, the management command and the tasks."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from integrations.models import Connection
from notifications import conditions, problems, sending
from notifications.event_types import EVENT_TYPES
from notifications.models import Alert, AlertRule, NotificationSink, Problem
from notifications.secrets import sink_secrets_destroy_after_commit, sink_secrets_read, sink_secrets_write
from notifications.sinks import KINDS
from synthorg.audit import audit_record
from synthorg.errors import Conflict, NotFound, ValidationFailed

logger = logging.getLogger(__name__)

SINK_FIELDS = ("name", "kind", "connection", "settings", "enabled", "secrets")
RULE_FIELDS = ("name", "events", "connection_types", "connections", "sinks", "reminder_interval_seconds", "params",
               "enabled")


def _fail(errors: Mapping[str, list[str]]) -> None:
    if errors:
        raise ValidationFailed("The request breaks a validation rule.", errors=dict(errors))


def _connection(name: Any) -> Connection | None:
    if name in (None, ""):
        return None
    connection = Connection.objects.filter(name__iexact=str(name)).first()
    if connection is None:
        _fail({"connection": [f"no connection named {str(name)[:128]!r}"]})
    return connection


@dataclass(frozen=True)
class SinkCreated:
    sink: NotificationSink
    # Generated secrets (the webhook's whsec_ key), returned once and never again.
    shown_once: dict[str, str]


def sink_check(kind_name: str, connection: Connection | None, settings: Any,
               secrets: Mapping[str, str]) -> dict[str, list[str]]:
    """The rules a sink must keep, by field (the admin form shows them before saving)."""
    kind = KINDS.get(kind_name)
    if kind is None:
        return {"kind": [f"one of {', '.join(KINDS)}"]}
    errors: dict[str, list[str]] = {}
    if not isinstance(settings, dict):
        return {"settings": ["an object"]}
    if kind.connection_type is None:
        if connection is not None:
            errors["connection"] = ["this kind uses no connection"]
    elif connection is None:
        errors["connection"] = [f"required: a {kind.connection_type} connection"]
    elif connection.connection_type != kind.connection_type:
        errors["connection"] = [f"must be a {kind.connection_type} connection, not {connection.connection_type}"]
    unknown = set(secrets) - set(kind.secret_fields if kind.generated_secret is None else ())
    if unknown:
        errors["secrets"] = [f"not accepted for this kind: {', '.join(sorted(unknown))}"]
    errors.update(kind.validate(settings, secrets))
    return errors


def sink_create(*, name: str, kind: str, connection: str | None = None, settings: Mapping[str, Any] | None = None,
                secrets: Mapping[str, str] | None = None, enabled: bool = True, actor: Any = None,
                request: HttpRequest | None = None) -> SinkCreated:
    settings = dict(settings or {})
    secrets = {k: str(v) for k, v in (secrets or {}).items()}
    target = _connection(connection)
    errors = sink_check(kind, target, settings, secrets)
    if not name or len(name) > 128:
        errors["name"] = ["1 to 128 characters"]
    elif NotificationSink.objects.filter(name=name).exists():
        errors["name"] = ["a sink with this name exists"]
    _fail(errors)
    generated = KINDS[kind].generated_secret
    shown = generated() if generated else {}
    with transaction.atomic():
        sink = NotificationSink.objects.create(name=name, kind=kind, connection=target, settings=settings,
                                               enabled=enabled)
        # After the row exists: a secret manager keys the secret by the sink's id. A backend that
        # refuses rolls the row back with it (a 503, nothing stored).
        if secrets or shown:
            sink_secrets_write(sink, {**secrets, **shown})
            sink.save(update_fields=["secret_ciphertext", "secret_key_id"])
        audit_record(action="notifications.sink_create", target=name, target_type="notification_sink", actor=actor,
                     request=request, details={"kind": kind, "connection": target.name if target else None})
    return SinkCreated(sink=sink, shown_once=shown)


def sink_get(sink_id: Any) -> NotificationSink:
    sink = NotificationSink.objects.select_related("connection").filter(pk=sink_id).first()
    if sink is None:
        raise NotFound("No such sink.", code="sink_not_found")
    return sink


def sink_update(*, sink_id: Any, data: Mapping[str, Any], actor: Any = None,
                request: HttpRequest | None = None) -> NotificationSink:
    unknown = set(data) - set(SINK_FIELDS) - {"kind"}
    _fail({key: ["unknown field"] for key in unknown})
    with transaction.atomic():
        sink = NotificationSink.objects.select_for_update().filter(pk=sink_id).first()
        if sink is None:
            raise NotFound("No such sink.", code="sink_not_found")
        if "kind" in data and data["kind"] != sink.kind:
            _fail({"kind": ["cannot change; create another sink"]})
        target = _connection(data["connection"]) if "connection" in data else sink.connection
        settings = data.get("settings", sink.settings)
        new_secrets = {k: str(v) for k, v in (data.get("secrets") or {}).items()}
        held = sink_secrets_read(sink)
        # Destination binding (issue 12): a sink's secret stays with the destination it was
        # created for. A webhook sink's whsec_ key was made for its receiver: it cannot follow
        # the sink to another connection (create a new sink, with a new key, instead).
        moved = sink.connection_id != (target.pk if target is not None else None)
        if moved and KINDS[sink.kind].generated_secret is not None:
            raise Conflict("A webhook sink's signing secret is bound to its receiver; create a new sink "
                           "for another connection.", code="sink_secret_bound")
        errors = sink_check(sink.kind, target, settings, {**held, **new_secrets} if new_secrets else new_secrets)
        if "name" in data and (not data["name"] or len(str(data["name"])) > 128 or NotificationSink.objects.filter(
                name=data["name"]).exclude(pk=sink.pk).exists()):
            errors["name"] = ["1 to 128 characters, unique"]
        _fail(errors)
        sink.connection, sink.settings = target, settings
        if "name" in data:
            sink.name = str(data["name"])
        if "enabled" in data:
            sink.enabled = bool(data["enabled"])
        if new_secrets:
            sink_secrets_write(sink, {**held, **new_secrets})
        sink.save()
        audit_record(action="notifications.sink_update", target=sink.name, target_type="notification_sink",
                     actor=actor, request=request,
                     details={"fields": sorted(k for k in data if k != "secrets"), "moved": moved,
                              "secrets_changed": sorted(new_secrets)})
    return sink


def sink_delete(*, sink_id: Any, actor: Any = None, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        sink = NotificationSink.objects.select_for_update().filter(pk=sink_id).first()
        if sink is None:
            raise NotFound("No such sink.", code="sink_not_found")
        name = sink.name
        sink_secrets_destroy_after_commit(sink, actor=actor)
        sink.delete()
        audit_record(action="notifications.sink_delete", target=name, target_type="notification_sink",
                     actor=actor, request=request)


def sink_test(*, sink_id: Any, actor: Any = None, request: HttpRequest | None = None) -> sending.SendOutcome:
    """Send a test alert now (one attempt; a failure is answered, not retried)."""
    sink = sink_get(sink_id)
    now = timezone.now()
    with transaction.atomic():
        alert = Alert.objects.create(sink=sink, kind=Alert.Kind.TEST, created_at=now, next_attempt_at=now)
        audit_record(action="notifications.sink_test", target=sink.name, target_type="notification_sink",
                     actor=actor, request=request, details={"alert": str(alert.pk)})
    outcome = sending.alert_send(alert_id=alert.pk, now=now)
    if outcome.result == "retry":
        # A test is for the operator watching: no retries behind their back.
        Alert.objects.filter(pk=alert.pk).update(status=Alert.Status.FAILED)
        return sending.SendOutcome("failed", outcome.alert_id, error=outcome.error)
    return outcome


# --- rules -------------------------------------------------------------------------------------

def rule_check(data: Mapping[str, Any]) -> tuple[dict[str, list[str]], list[Connection] | None,
                                                  list[NotificationSink] | None]:
    errors: dict[str, list[str]] = {}
    if "events" in data:
        events = data["events"]
        if not isinstance(events, list) or not events or any(e not in EVENT_TYPES for e in events):
            errors["events"] = [f"a non-empty list of: {', '.join(EVENT_TYPES)}"]
    if "connection_types" in data:
        from integrations.types import REGISTRY

        types = data["connection_types"]
        if not isinstance(types, list) or any(t not in REGISTRY for t in types):
            errors["connection_types"] = ["a list of connection type names"]
    interval = data.get("reminder_interval_seconds")
    if interval is not None and (not isinstance(interval, int) or isinstance(interval, bool) or interval < 60):
        errors["reminder_interval_seconds"] = ["null (no reminders) or at least 60"]
    if "params" in data:
        params = data["params"]
        known = {name for e in EVENT_TYPES.values() for name in e.params}
        if not isinstance(params, dict) or any(k not in known or not isinstance(v, int | float) or v < 0
                                               for k, v in params.items()):
            errors["params"] = [f"numbers for: {', '.join(sorted(known))}"]
    connections = sinks = None
    if "connections" in data:
        names = data["connections"] or []
        connections = list(Connection.objects.filter(name__in=names)) if isinstance(names, list) else []
        if not isinstance(names, list) or len(connections) != len(set(names)):
            errors["connections"] = ["a list of existing connection names"]
    if "sinks" in data:
        ids = data["sinks"] or []
        sinks = list(NotificationSink.objects.filter(pk__in=ids)) if isinstance(ids, list) and all(
            isinstance(i, int) for i in ids) else []
        if not isinstance(ids, list) or len(sinks) != len(set(ids)):
            errors["sinks"] = ["a list of existing sink ids"]
    if "name" in data and (not isinstance(data["name"], str) or not 1 <= len(data["name"]) <= 128):
        errors["name"] = ["1 to 128 characters"]
    return errors, connections, sinks


def rule_create(*, data: Mapping[str, Any], actor: Any = None, request: HttpRequest | None = None) -> AlertRule:
    errors, connections, sinks = rule_check(data)
    for required in ("name", "events"):
        if required not in data:
            errors[required] = ["required"]
    if "name" in data and AlertRule.objects.filter(name=data["name"]).exists():
        errors["name"] = ["a rule with this name exists"]
    errors.update({k: ["unknown field"] for k in set(data) - set(RULE_FIELDS)})
    _fail(errors)
    with transaction.atomic():
        rule = AlertRule.objects.create(
            name=data["name"], events=data["events"], connection_types=data.get("connection_types", []),
            reminder_interval_seconds=data.get("reminder_interval_seconds"), params=data.get("params", {}),
            enabled=data.get("enabled", True))
        if connections:
            rule.connections.set(connections)
        if sinks:
            rule.sinks.set(sinks)
        audit_record(action="notifications.rule_create", target=rule.name, target_type="alert_rule", actor=actor,
                     request=request)
    return rule


def rule_get(rule_id: Any) -> AlertRule:
    rule = AlertRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise NotFound("No such rule.", code="rule_not_found")
    return rule


def rule_update(*, rule_id: Any, data: Mapping[str, Any], actor: Any = None,
                request: HttpRequest | None = None) -> AlertRule:
    errors, connections, sinks = rule_check(data)
    errors.update({k: ["unknown field"] for k in set(data) - set(RULE_FIELDS)})
    if "name" in data and AlertRule.objects.filter(name=data["name"]).exclude(pk=rule_id).exists():
        errors["name"] = ["a rule with this name exists"]
    _fail(errors)
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().filter(pk=rule_id).first()
        if rule is None:
            raise NotFound("No such rule.", code="rule_not_found")
        for field in ("name", "events", "connection_types", "reminder_interval_seconds", "params", "enabled"):
            if field in data:
                setattr(rule, field, data[field])
        rule.save()
        if connections is not None:
            rule.connections.set(connections)
        if sinks is not None:
            rule.sinks.set(sinks)
        audit_record(action="notifications.rule_update", target=rule.name, target_type="alert_rule", actor=actor,
                     request=request, details={"fields": sorted(data)})
    return rule


def rule_delete(*, rule_id: Any, actor: Any = None, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        rule = rule_get(rule_id)
        name = rule.name
        rule.delete()
        audit_record(action="notifications.rule_delete", target=name, target_type="alert_rule", actor=actor,
                     request=request)


# --- problems ----------------------------------------------------------------------------------

def problem_get(problem_id: Any) -> Problem:
    problem = Problem.objects.select_related("rule").filter(pk=problem_id).first()
    if problem is None:
        raise NotFound("No such problem.", code="problem_not_found")
    return problem


def problem_acknowledge(*, problem_id: Any, actor: Any = None, request: HttpRequest | None = None) -> Problem:
    """No reminders until it resolves. Idempotent: a second acknowledgement changes nothing."""
    now = timezone.now()
    with transaction.atomic():
        problem = Problem.objects.select_for_update().select_related("rule").filter(pk=problem_id).first()
        if problem is None:
            raise NotFound("No such problem.", code="problem_not_found")
        if problem.acknowledged_at is None and problem.state != Problem.State.RESOLVED:
            who = actor.get_username() if hasattr(actor, "get_username") else str(actor or "system")
            problem.acknowledged_at, problem.acknowledged_by = now, who[:150]
            problems._history(problem, "acknowledged", now, by=who[:150])
            problem.save(update_fields=["acknowledged_at", "acknowledged_by", "history"])
            # Reminders already queued but not yet sent are dropped too.
            Alert.objects.filter(problem=problem, kind=Alert.Kind.REMINDER, status=Alert.Status.PENDING).update(
                status=Alert.Status.FAILED, last_error="acknowledged before it was sent")
            audit_record(action="notifications.problem_acknowledge", target=problem.title,
                         target_type="problem", actor=actor, request=request, details={"problem": problem.pk})
    return problem


def problems_list(*, state: str | None = None) -> Any:
    query = Problem.objects.select_related("rule").order_by("-first_seen_at", "-id")
    if state == "live":
        return query.filter(problems.live_problem_filter())
    return query.filter(state=state) if state else query


@dataclass(frozen=True)
class EvaluationReport:
    evaluated: list[str]
    orphans_resolved: int
    reminders: int


def problems_evaluate(*, now: datetime | None = None, events: Sequence[str] | None = None) -> EvaluationReport:
    """The periodic evaluation: conditions, promotions, deleted connections, reminders.

    Each condition in its own transaction, so one failing source does not stop the others.
    """
    now = now or timezone.now()
    done = []
    for event, evaluate in conditions.EVALUATORS.items():
        if events is not None and event not in events:
            continue
        try:
            with transaction.atomic():
                problems.condition_apply(event, evaluate(now), now=now)
            done.append(event)
        except Exception:
            logger.exception("Evaluating %s failed", event)
    with transaction.atomic():
        orphans = problems.problems_orphaned_resolve(now=now)
    with transaction.atomic():
        reminders = problems.reminders_enqueue(now=now)
    return EvaluationReport(evaluated=done, orphans_resolved=orphans, reminders=reminders)

"""Webhook operations after receipt: publication on #webhooks (with its outbox sweep), the
ExternalTriggerStrategy, workflow runs, retention, signing-secret rotation and rule writes.

The receiver itself is ``webhooks.receiver.delivery_receive``.
"""
from __future__ import annotations

import logging
import secrets as secrets_module
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from integrations import selectors
from integrations import services as connection_services
from integrations.ratelimit import RateLimitExceeded
from integrations.secrets import managed
from integrations.types import get_type
from synthorg import bus, events, metrics
from synthorg.audit import audit_record
from synthorg.config import get_config
from synthorg.errors import Conflict, NotFound, ValidationFailed
from synthorg.http import TransientError
from webhooks.conditions import conditions_hold, event_type_matches
from webhooks.models import (
    BusMessage,
    Delivery,
    ReceiptSample,
    RejectionCount,
    TriggerRule,
    WebhookEndpoint,
    WorkflowRun,
)
from webhooks.payloads import payload_from_delivery
from webhooks.verifiers import generate_standard_secret
from webhooks.workflows import get_workflow

logger = logging.getLogger(__name__)

WEBHOOKS_CHANNEL = "#webhooks"
STRATEGY_SUBSCRIBER = "external_trigger_strategy"
# Kept below the broker's visibility timeout (settings: 3600 s) so a countdown never outlives it.
MAX_RETRY_COUNTDOWN_SECONDS = 600
# GitHub's "Redeliver" works for three days: keys without a signed timestamp live at least that long.
MIN_UNSIGNED_REPLAY_HORIZON = timedelta(days=3)
DEFAULT_ROTATION_GRACE = timedelta(hours=24)
MAX_ROTATION_GRACE = timedelta(days=30)


# --- publication ------------------------------------------------------------------------------

def delivery_event(delivery: Delivery, *, as_sent: bool = False) -> dict[str, Any]:
    """The #webhooks message for a delivery.

    The bus stores its messages in PostgreSQL, so the message carries the stored payload
    (``payload_escaped`` says whether NULs or lone surrogates in it are written as escapes).
    ``as_sent`` puts the payload as the sender meant it instead (workflow runs: `http_forward`
    sends it as JSON, where ``\u0000`` is an escape again).
    """
    return {
        "event_id": str(delivery.event_id),
        "connection_name": delivery.connection_name,
        "connection_type": delivery.connection_type,
        "event_type": delivery.event_type,
        "delivery_id": delivery.pk,
        "payload": delivery_payload_as_sent(delivery) if as_sent else delivery.payload,
        "payload_escaped": delivery.payload_escaped and not as_sent,
        "received_at": delivery.received_at.isoformat(),
    }


def delivery_payload_as_sent(delivery: Delivery) -> dict[str, Any]:
    """The payload as the sender meant it: NULs and lone surrogates as they were sent."""
    return payload_from_delivery(payload=delivery.payload, escaped=delivery.payload_escaped, body=delivery.body,
                                 content_type=delivery.content_type)


def event_payload_as_sent(event: Mapping[str, Any]) -> Any:
    """A #webhooks message's payload as the sender meant it (read from the raw body when the
    message carries an escaped copy)."""
    payload = event.get("payload") or {}
    if not event.get("payload_escaped"):
        return payload
    delivery = Delivery.objects.filter(pk=event.get("delivery_id")).only(
        "payload", "payload_escaped", "body", "content_type").first()
    return payload if delivery is None else delivery_payload_as_sent(delivery)


def delivery_publish(*, delivery_id: int) -> str:
    """Publish one delivery on #webhooks. Safe to run twice, concurrently or after a crash.

    Claim, then act: a conditional UPDATE takes a pending delivery (or one whose claim is older
    than ``publish_stuck_seconds``); the bus is idempotent by event id and each subscriber's
    handling is recorded in its own transaction, so a second run never hands an event twice.
    """
    cfg = get_config().integrations.webhooks
    now = timezone.now()
    stuck_before = now - timedelta(seconds=cfg.publish_stuck_seconds)
    claimable = Q(publish_state=Delivery.PublishState.PENDING) | Q(
        publish_state=Delivery.PublishState.PUBLISHING, publish_claimed_at__lt=stuck_before)
    claimed = Delivery.objects.filter(claimable, pk=delivery_id).update(
        publish_state=Delivery.PublishState.PUBLISHING, publish_claimed_at=now,
        publish_attempts=F("publish_attempts") + 1)
    if not claimed:
        return "not_claimed"
    delivery = Delivery.objects.get(pk=delivery_id)
    try:
        bus.publish(WEBHOOKS_CHANNEL, delivery_event(delivery))
    except Exception:
        # Hand it back to the sweep; the subscribers that finished are recorded and skipped next time.
        Delivery.objects.filter(pk=delivery_id, publish_claimed_at=now).update(
            publish_state=Delivery.PublishState.PENDING)
        raise
    if Delivery.objects.filter(pk=delivery_id, publish_claimed_at=now).update(
            publish_state=Delivery.PublishState.PUBLISHED, published_at=timezone.now()):
        metrics.observe_lag(metrics.PUBLICATION_LAG, delivery.received_at)
    return "published"


def publication_sweep(*, batch_size: int = 500) -> dict[str, int]:
    """The outbox: enqueue deliveries left pending (broker down at receipt) or stuck in
    publication, and workflow runs left pending or stuck running."""
    from webhooks.dispatcher import MAX_BATCH, send_batch
    from webhooks.tasks import workflow_run_enqueue

    cfg = get_config().integrations.webhooks
    now = timezone.now()
    stuck_before = now - timedelta(seconds=cfg.publish_stuck_seconds)
    # A fresh pending delivery is normally enqueued on commit; give that a moment first.
    grace_before = now - timedelta(seconds=min(5, cfg.publish_stuck_seconds))
    deliveries = list(Delivery.objects.filter(
        Q(publish_state=Delivery.PublishState.PENDING, received_at__lt=grace_before)
        | Q(publish_state=Delivery.PublishState.PUBLISHING, publish_claimed_at__lt=stuck_before),
    ).order_by("received_at").values_list("pk", flat=True)[:batch_size])
    # The receiver's own message (`webhooks.delivery_publish_batch`), a batch per message.
    enqueued = sum(len(chunk) for chunk in (deliveries[start:start + MAX_BATCH]
                                            for start in range(0, len(deliveries), MAX_BATCH))
                   if send_batch(chunk))
    runs = list(WorkflowRun.objects.filter(
        Q(status=WorkflowRun.Status.PENDING, created_at__lt=grace_before)
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        | Q(status=WorkflowRun.Status.RUNNING, started_at__lt=stuck_before),
    ).order_by("created_at").values_list("pk", flat=True)[:batch_size])
    runs_enqueued = sum(workflow_run_enqueue(pk) for pk in runs)
    if deliveries or runs:
        logger.info("outbox sweep: %d/%d deliveries and %d/%d runs enqueued", enqueued, len(deliveries),
                    runs_enqueued, len(runs))
    return {"deliveries": len(deliveries), "deliveries_enqueued": enqueued, "runs": len(runs),
            "runs_enqueued": runs_enqueued}


# --- ExternalTriggerStrategy ------------------------------------------------------------------

class ExternalTriggerStrategy:
    """Subscribes to #webhooks; records a WorkflowRun for every enabled rule that matches.

    Runs in the bus's per-subscriber transaction: the runs and the "handled" row commit
    together, and the run tasks are enqueued only after that commit.
    """

    name = STRATEGY_SUBSCRIBER

    def matching_rules(self, event: Mapping[str, Any]) -> list[TriggerRule]:
        rules = TriggerRule.objects.filter(enabled=True).filter(
            Q(connection__isnull=True) | Q(connection__name__iexact=event["connection_name"]))
        # Conditions compare what the sender meant ("x\u0000y" is x, NUL, y), not the stored escape.
        payload = event_payload_as_sent(event)
        return [rule for rule in rules
                if event_type_matches(rule.event_type, event["event_type"], payload)
                and conditions_hold(rule.conditions, payload)]

    def handle(self, channel: str, event: Mapping[str, Any]) -> None:
        from webhooks.tasks import workflow_run_enqueue

        for rule in self.matching_rules(event):
            run, created = WorkflowRun.objects.get_or_create(
                rule_name=rule.name, event_id=event["event_id"],
                defaults={"rule": rule, "workflow": rule.workflow, "parameters": rule.parameters,
                          "delivery_id": event.get("delivery_id"), "connection_name": event["connection_name"],
                          "event_type": event["event_type"]})
            if created:
                transaction.on_commit(lambda pk=run.pk: workflow_run_enqueue(pk))


def strategy_register() -> None:
    strategy = ExternalTriggerStrategy()
    bus.subscribe(WEBHOOKS_CHANNEL, strategy.name, strategy.handle)


@dataclass(frozen=True)
class RunOutcome:
    status: str
    retry_in: float | None = None


def workflow_run_execute(*, run_id: int) -> RunOutcome:
    """Claim a pending run (or one stuck running), run its workflow, record the result.

    Transient failures (TransientError, our own rate limit) leave it pending for a retry
    until ``workflow_max_attempts``; anything else fails it at once.
    """
    cfg = get_config().integrations.webhooks
    now = timezone.now()
    claimable = Q(status=WorkflowRun.Status.PENDING) | Q(
        status=WorkflowRun.Status.RUNNING, started_at__lt=now - timedelta(seconds=cfg.publish_stuck_seconds))
    if not WorkflowRun.objects.filter(claimable, pk=run_id).update(
            status=WorkflowRun.Status.RUNNING, started_at=now, attempts=F("attempts") + 1, next_attempt_at=None):
        return RunOutcome("not_claimed")
    run = WorkflowRun.objects.select_related("delivery").get(pk=run_id)
    if run.attempts == 1 and run.delivery is not None:
        metrics.observe_lag(metrics.RUN_LAG, run.delivery.received_at)

    def finish(status: str, **fields: Any) -> RunOutcome:
        with transaction.atomic():  # the run's end and its alert commit together (issue 16)
            if WorkflowRun.objects.filter(pk=run_id, started_at=now).update(
                    status=status, finished_at=timezone.now(), **fields):
                _announce_run(run, status, fields.get("error", ""))
                metrics.WORKFLOW_RUNS.labels(status).inc()
        return RunOutcome(status)

    if run.delivery is None:
        return finish(WorkflowRun.Status.FAILED, error="the delivery was deleted before the run")
    try:
        workflow = get_workflow(run.workflow)
        result = workflow.run(delivery_event(run.delivery, as_sent=True), run.parameters)
    except (TransientError, RateLimitExceeded) as exc:
        # TransientError includes the limiter's own outage (`RateLimiterUnavailable`): a
        # workflow that meets it waits and retries, it does not fail (issue 13).
        error = f"{type(exc).__name__}: {exc}"[:500]
        if run.attempts >= cfg.workflow_max_attempts:
            return finish(WorkflowRun.Status.FAILED, error=error)
        wait = getattr(exc, "retry_after", None) or min(MAX_RETRY_COUNTDOWN_SECONDS, 5 * 2 ** (run.attempts - 1))
        wait = min(float(wait), MAX_RETRY_COUNTDOWN_SECONDS)
        WorkflowRun.objects.filter(pk=run_id, started_at=now).update(
            status=WorkflowRun.Status.PENDING, error=error, next_attempt_at=now + timedelta(seconds=wait))
        metrics.WORKFLOW_RUNS.labels("retry").inc()
        return RunOutcome(WorkflowRun.Status.PENDING, retry_in=wait)
    except Exception as exc:  # a workflow's own failure is recorded on the run, not raised
        logger.exception("workflow run %s (%s) failed", run_id, run.workflow)
        return finish(WorkflowRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
    return finish(WorkflowRun.Status.SUCCEEDED, error="", result=result if isinstance(result, dict) else {})


def _announce_run(run: WorkflowRun, status: str, error: str) -> None:
    """Alerting (issue 16): a failed run opens its trigger rule's problem; the next success ends it."""
    if status not in (WorkflowRun.Status.FAILED, WorkflowRun.Status.SUCCEEDED):
        return
    delivery = run.delivery
    events.emit(events.WORKFLOW_RUN_FAILED, subject=f"workflow:{run.rule_name}",
                active=status == WorkflowRun.Status.FAILED,
                title=f"Workflow {run.workflow} of trigger rule {run.rule_name} is failing",
                connection_id=delivery.connection_id if delivery else None,
                connection_type=delivery.connection_type if delivery else "",
                details={"connection": run.connection_name, "workflow": run.workflow, "rule": run.rule_name,
                         "run": run.pk, "error": error[:200]})


# --- retention --------------------------------------------------------------------------------

def deliveries_prune(*, batch_size: int = 500, now: datetime | None = None) -> dict[str, int]:
    """Delete published deliveries past retention (per-connection override; 0 = keep) whose
    replay key is also past its horizon; then old counters, samples and bus messages."""
    cfg = get_config().integrations.webhooks
    now = now or timezone.now()
    window = timedelta(seconds=cfg.replay_window_seconds)
    overrides = dict(WebhookEndpoint.objects.filter(retention_days__isnull=False)
                     .values_list("connection_id", "retention_days"))
    deleted = 0

    def prune(queryset: Any, days: int) -> int:
        if days == 0:
            return 0
        cutoff = now - timedelta(days=days)
        unsigned_cutoff = now - max(timedelta(days=days), MIN_UNSIGNED_REPLAY_HORIZON)
        candidates = queryset.filter(publish_state=Delivery.PublishState.PUBLISHED, received_at__lt=cutoff).filter(
            Q(signed_timestamp__isnull=False, received_at__lt=now - window)
            | Q(signed_timestamp__isnull=True, received_at__lt=unsigned_cutoff))
        total = 0
        while True:
            ids = list(candidates.values_list("pk", flat=True)[:batch_size])
            if not ids:
                return total
            total += Delivery.objects.filter(pk__in=ids).delete()[1].get("webhooks.Delivery", 0)

    deleted += prune(Delivery.objects.exclude(connection_id__in=list(overrides)), cfg.receipt_retention_days)
    for connection_id, days in overrides.items():
        deleted += prune(Delivery.objects.filter(connection_id=connection_id), days)
    counters = samples = messages = 0
    if cfg.receipt_retention_days:
        cutoff = now - timedelta(days=cfg.receipt_retention_days)
        counters = RejectionCount.objects.filter(minute__lt=cutoff).delete()[0]
        samples = ReceiptSample.objects.filter(received_at__lt=cutoff).delete()[0]
        horizon = now - max(timedelta(days=cfg.receipt_retention_days), MIN_UNSIGNED_REPLAY_HORIZON)
        messages = BusMessage.objects.filter(published_at__lt=horizon).delete()[0]
    return {"deliveries": deleted, "counters": counters, "samples": samples, "bus_messages": messages}


# --- signing-secret rotation ------------------------------------------------------------------

@dataclass(frozen=True)
class RotationResult:
    connection_name: str
    previous_valid_until: datetime | None
    generated_secret: str | None


def signing_secret_rotate(*, name: str, secret: str | None = None, previous_valid_until: datetime | None = None,
                          actor: Any = None, request: HttpRequest | None = None) -> RotationResult:
    """Set a new signing secret; the old one stays valid until ``previous_valid_until`` (default 24 h)."""
    connection = selectors.connection_get(name)
    ctype = get_type(connection.connection_type)
    if ctype.webhook_scheme is None or "signing_secret" not in ctype.secret_field_names:
        raise ValidationFailed(f"Connections of type {ctype.name!r} receive no signed webhooks.",
                               code="no_signing_secret", errors={"connection": ["has no signing_secret field"]})
    now = timezone.now()
    until = previous_valid_until or now + DEFAULT_ROTATION_GRACE
    if until <= now or until > now + MAX_ROTATION_GRACE:
        raise ValidationFailed(errors={"previous_valid_until": ["must be in the future and at most 30 days away"]})
    standard = (connection.connection_type == "generic_http"
                and connection.config.get("signature_scheme") == "standard_webhooks")
    generated = None
    if not secret:
        generated = generate_standard_secret() if standard else secrets_module.token_hex(32)
        secret = generated
    elif len(secret) < 16:
        raise ValidationFailed(errors={"secret": ["must be at least 16 characters"]})
    with transaction.atomic():
        endpoint, _ = WebhookEndpoint.objects.select_for_update().get_or_create(connection=connection)
        old = connection_services.connection_secrets(connection).get("signing_secret") or ""
        if old:
            # Through the configured backend: a secret manager keeps it as
            # <prefix>/webhook-endpoints/<endpoint id> (a new version per rotation), the database a reference.
            stored, key_id = managed.seal(managed.WEBHOOK_ENDPOINTS, endpoint.pk, {"signing_secret": old},
                                          previous=endpoint.previous_secret_ciphertext)
            endpoint.previous_secret_ciphertext, endpoint.previous_secret_key_id = stored, key_id
            endpoint.previous_valid_until = until
        else:
            managed.destroy_after_commit([(endpoint.previous_secret_ciphertext,
                                           f"{managed.WEBHOOK_ENDPOINTS}/{endpoint.pk}")], actor=actor)
            endpoint.previous_secret_ciphertext, endpoint.previous_secret_key_id = "", ""
            endpoint.previous_valid_until = None
        endpoint.rotated_at = now
        endpoint.save()
        connection_services.connection_update(name=connection.name, data={"credentials": {"signing_secret": secret}},
                                              actor=actor, request=request)
        audit_record(action="connection.signing_secret.rotate", target=connection.name, target_type="connection",
                     actor=actor, request=request,
                     details={"previous_valid_until": endpoint.previous_valid_until.isoformat()
                              if endpoint.previous_valid_until else None,
                              "had_previous": bool(old), "generated": generated is not None})
    return RotationResult(connection.name, endpoint.previous_valid_until, generated)


# --- trigger rules ----------------------------------------------------------------------------

RULE_FIELDS = ("name", "enabled", "event_type", "conditions", "workflow", "parameters")


def _rule_apply(rule: TriggerRule, data: Mapping[str, Any]) -> None:
    for key in RULE_FIELDS:
        if key in data:
            setattr(rule, key, data[key])
    if "connection" in data:
        rule.connection = None
        if data["connection"]:
            # A rule naming a connection that does not exist breaks a rule: 422, not 404.
            rule.connection = selectors.connection_find(data["connection"])
            if rule.connection is None:
                raise ValidationFailed(f"connection: no connection named {data['connection']!r}",
                                       errors={"connection": ["no connection with this name"]})
    try:
        rule.full_clean()
    except ValidationError as exc:
        raise ValidationFailed(errors={k: [str(m) for m in v] for k, v in exc.message_dict.items()}) from None


def trigger_rule_create(*, data: Mapping[str, Any], actor: Any = None,
                        request: HttpRequest | None = None) -> TriggerRule:
    rule = TriggerRule()
    _rule_apply(rule, data)
    with transaction.atomic():
        rule.save()
        audit_record(action="trigger_rule.create", target=rule.name, target_type="trigger_rule", actor=actor,
                     request=request, details={"workflow": rule.workflow, "event_type": rule.event_type})
    return rule


def trigger_rule_update(*, rule_id: int, data: Mapping[str, Any], actor: Any = None,
                        request: HttpRequest | None = None) -> TriggerRule:
    with transaction.atomic():
        rule = TriggerRule.objects.select_for_update().get(pk=rule_id)
        _rule_apply(rule, data)
        rule.save()
        audit_record(action="trigger_rule.update", target=rule.name, target_type="trigger_rule", actor=actor,
                     request=request, details={"changed": sorted(k for k in data if k in (*RULE_FIELDS, "connection"))})
    return rule


def trigger_rule_delete(*, rule_id: int, actor: Any = None, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        rule = TriggerRule.objects.select_for_update().get(pk=rule_id)
        audit_record(action="trigger_rule.delete", target=rule.name, target_type="trigger_rule", actor=actor,
                     request=request)
        rule.delete()


# --- operator retry of a workflow run ---------------------------------------------------------

def workflow_run_retry(*, run_id: int, actor: Any = None, request: HttpRequest | None = None) -> WorkflowRun:
    """Put a failed run back to pending with a fresh attempt budget and queue it after commit.

    Only failed runs: a pending or running one is already on its way, and a succeeded one
    must not fire its workflow twice. The conditional UPDATE makes two clicks queue one run.
    """
    from webhooks.tasks import workflow_run_enqueue

    with transaction.atomic():
        reset = WorkflowRun.objects.filter(pk=run_id, status=WorkflowRun.Status.FAILED).update(
            status=WorkflowRun.Status.PENDING, attempts=0, next_attempt_at=None, started_at=None,
            finished_at=None, error="")  # queued again: the old error stays in the audit event only
        run = WorkflowRun.objects.filter(pk=run_id).first()
        if run is None:
            raise NotFound(f"No workflow run {run_id}.", code="workflow_run_not_found")
        if not reset:
            raise Conflict(f"Workflow run {run_id} is {run.status}; only failed runs can be retried.",
                           code="workflow_run_not_failed")
        audit_record(action="workflow_run.retry", target=str(run.pk), target_type="workflow_run", actor=actor,
                     request=request, details={"rule": run.rule_name, "previous_error": run.error[:200]})
        transaction.on_commit(lambda: workflow_run_enqueue(run_id))
    return run


# The name the operator console's brief uses.
run_retry = workflow_run_retry

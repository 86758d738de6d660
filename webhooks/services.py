"""Webhook operations after receipt: publication on #webhooks (with its outbox sweep), the
ExternalTriggerStrategy, workflow runs, retention, signing-secret rotation and rule writes.

The receiver itself is ``webhooks.receiver.delivery_receive``.
"""
from __future__ import annotations

import logging
import secrets as secrets_module
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.http import HttpRequest
from django.utils import timezone

from integrations import selectors
from integrations import services as connection_services
from integrations.models import Connection
from integrations.ratelimit import RateLimitExceeded
from integrations.secrets import managed
from integrations.types import get_type
from synthorg import bus, events, metrics
from synthorg.audit import audit_record
from synthorg.config import get_config
from synthorg.errors import Conflict, NotFound, ValidationFailed
from synthorg.http import TransientError
from webhooks import bulk
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


@dataclass
class PublicationReport:
    """What ``deliveries_publish`` did with each id of its batch."""

    published: list[int] = field(default_factory=list)
    # Someone else's (another worker's live claim) or done already: nothing was done to them.
    not_claimed: list[int] = field(default_factory=list)
    # Handed back to pending for the outbox sweep; the subscribers that finished are recorded.
    failed: dict[int, BaseException] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts = {"published": len(self.published), "not_claimed": len(self.not_claimed),
                  "failed": len(self.failed)}
        return {outcome: n for outcome, n in counts.items() if n}


def deliveries_publish(*, delivery_ids: Sequence[int]) -> PublicationReport:
    """Publish a batch of deliveries on #webhooks. Safe to run twice, concurrently or after a crash.

    Claim, then act: one conditional UPDATE takes the deliveries of the batch that are pending
    (or whose claim is older than ``publish_stuck_seconds``); the others belong to someone else.
    ``bus.publish_many`` records the messages (idempotent by event id) and hands the new ones to
    each subscriber in one transaction per batch, which records "handled" for each, so a second
    run never hands an event twice; one UPDATE marks the batch published. A delivery that failed
    goes back to pending for the sweep, the rest of the batch is published; a crash leaves the
    batch claimed until the sweep takes it back (issue 15 §6).
    """
    cfg = get_config().integrations.webhooks
    now = timezone.now()
    stuck_before = now - timedelta(seconds=cfg.publish_stuck_seconds)
    ids = list(dict.fromkeys(delivery_ids))
    publishing, pending = Delivery.PublishState.PUBLISHING, Delivery.PublishState.PENDING
    claimed = bulk.update_returning_ids(
        Delivery, {"publish_state": publishing, "publish_claimed_at": now,
                   "publish_attempts": bulk.Raw("publish_attempts + 1")}, ids,
        "publish_state = %s OR (publish_state = %s AND publish_claimed_at < %s)",
        [pending, publishing, bulk.db_time(stuck_before)])
    taken = set(claimed)
    report = PublicationReport(not_claimed=[pk for pk in ids if pk not in taken])
    if not claimed:
        return report
    # The raw body and headers stay in the table: an escaped payload's rules read the body themselves.
    deliveries = list(Delivery.objects.filter(pk__in=claimed).defer("body", "headers").order_by("pk"))
    # Deleted meanwhile (connection deleted): nothing to publish, nothing to mark.
    report.not_claimed += sorted(set(claimed) - {delivery.pk for delivery in deliveries})
    mine = Delivery.objects.filter(publish_claimed_at=now)
    try:
        outcome = bus.publish_many(WEBHOOKS_CHANNEL, [delivery_event(delivery) for delivery in deliveries])
    except Exception:
        # The store itself failed: hand the batch back; what finished is recorded and skipped next time.
        mine.filter(pk__in=claimed).update(publish_state=pending)
        raise
    for delivery in deliveries:
        if str(delivery.event_id) in outcome.failed:
            report.failed[delivery.pk] = outcome.failed[str(delivery.event_id)]
    if report.failed:
        mine.filter(pk__in=list(report.failed)).update(publish_state=pending)
    done = [delivery for delivery in deliveries if delivery.pk not in report.failed]
    marked = set(bulk.update_returning_ids(
        Delivery, {"publish_state": Delivery.PublishState.PUBLISHED, "published_at": timezone.now()},
        [delivery.pk for delivery in done], "publish_claimed_at = %s", [bulk.db_time(now)]))
    for delivery in done:
        report.published.append(delivery.pk)
        if delivery.pk in marked:  # not when a sweep took a claim this run held too long
            metrics.observe_lag(metrics.PUBLICATION_LAG, delivery.received_at)
    return report


def delivery_publish(*, delivery_id: int) -> str:
    """Publish one delivery (``deliveries_publish`` with one id): "published" or "not_claimed";
    a subscriber's failure is raised after the delivery went back to pending."""
    report = deliveries_publish(delivery_ids=[delivery_id])
    if report.failed:
        raise report.failed[delivery_id]
    return "published" if report.published else "not_claimed"


def publication_sweep(*, batch_size: int = 500) -> dict[str, int]:
    """The outbox: enqueue deliveries left pending (broker down at receipt) or stuck in
    publication, and workflow runs left pending or stuck running."""
    from webhooks.dispatcher import MAX_BATCH, send_batch
    from webhooks.tasks import workflow_runs_enqueue

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
    runs_enqueued = workflow_runs_enqueue(runs)
    if deliveries or runs:
        logger.info("outbox sweep: %d/%d deliveries and %d/%d runs enqueued", enqueued, len(deliveries),
                    runs_enqueued, len(runs))
    return {"deliveries": len(deliveries), "deliveries_enqueued": enqueued, "runs": len(runs),
            "runs_enqueued": runs_enqueued}


# --- ExternalTriggerStrategy ------------------------------------------------------------------

class ExternalTriggerStrategy:
    """Subscribes to #webhooks; records a WorkflowRun for every enabled rule that matches.

    Runs in the bus's per-subscriber transaction: the runs and the "handled" rows commit
    together, and the runs are enqueued (one message per batch) only after that commit.
    """

    name = STRATEGY_SUBSCRIBER

    def enabled_rules(self) -> list[TriggerRule]:
        # One query per batch; the connection's name rides along for the scope test.
        return list(TriggerRule.objects.filter(enabled=True).annotate(scope=F("connection__name")))

    def matching_rules(self, event: Mapping[str, Any], rules: list[TriggerRule] | None = None) -> list[TriggerRule]:
        name = str(event["connection_name"]).lower()
        # Connection names are ASCII ([A-Za-z0-9._-]): lower() is the query's iexact.
        candidates = [rule for rule in (self.enabled_rules() if rules is None else rules)
                      if rule.connection_id is None or str(rule.scope).lower() == name]  # type: ignore[attr-defined]
        if not candidates:
            return []
        # Conditions compare what the sender meant ("x\u0000y" is x, NUL, y), not the stored escape.
        payload = event_payload_as_sent(event)
        return [rule for rule in candidates
                if event_type_matches(rule.event_type, event["event_type"], payload)
                and conditions_hold(rule.conditions, payload)]

    def handle(self, channel: str, event: Mapping[str, Any]) -> None:
        self.handle_many(channel, [event])

    def handle_many(self, channel: str, events: Sequence[Mapping[str, Any]]) -> None:
        from webhooks.tasks import workflow_runs_enqueue

        rules = self.enabled_rules()
        wanted: dict[tuple[str, str], WorkflowRun] = {}
        for event in events:
            for rule in self.matching_rules(event, rules):
                wanted[(rule.name, str(event["event_id"]))] = WorkflowRun(
                    rule=rule, rule_name=rule.name, event_id=event["event_id"], workflow=rule.workflow,
                    parameters=rule.parameters, delivery_id=event.get("delivery_id"),
                    connection_name=event["connection_name"], event_type=event["event_type"])
        if not wanted:
            return
        # A run is unique per (rule name, event): one recorded before (by a rule since renamed
        # back, or an earlier version) is kept and not run again, as get_or_create did.
        run_ids = [pk for (pk,) in bulk.insert_returning(WorkflowRun, list(wanted.values()), ["id"])]
        if run_ids:
            transaction.on_commit(lambda: workflow_runs_enqueue(run_ids))


def strategy_register() -> None:
    strategy = ExternalTriggerStrategy()
    bus.subscribe(WEBHOOKS_CHANNEL, strategy.name, strategy.handle, batch_handler=strategy.handle_many)


@dataclass(frozen=True)
class RunOutcome:
    status: str
    retry_in: float | None = None


# A batch's finished runs are recorded at least this often: a worker killed mid-batch leaves at
# most this much executed-but-unrecorded work for the sweep to run again.
RUN_RECORD_INTERVAL_SECONDS = 0.1


@dataclass
class _Ended:
    run: WorkflowRun
    status: str
    fields: dict[str, Any]


def workflow_runs_execute(*, run_ids: Sequence[int]) -> dict[int, RunOutcome]:
    """Claim a batch of runs (pending, or stuck running) in one UPDATE, run their workflows one
    after the other, record the results; returns each id's outcome ("not_claimed" for the runs
    someone else holds or that are done).

    Transient failures (TransientError, our own rate limit) leave a run pending with
    ``retry_in`` until ``workflow_max_attempts``; anything else fails it at once. A run's end
    and its alert commit together (issue 16); the ends of a batch share a transaction, recorded
    every ``RUN_RECORD_INTERVAL_SECONDS``. Runs not started within half of
    ``publish_stuck_seconds`` of the claim are handed back (pending, ``retry_in`` 0) before the
    sweep would think them stuck and start them a second time.
    """
    cfg = get_config().integrations.webhooks
    now = timezone.now()
    ids = list(dict.fromkeys(run_ids))
    running, pending = WorkflowRun.Status.RUNNING, WorkflowRun.Status.PENDING
    stuck_before = now - timedelta(seconds=cfg.publish_stuck_seconds)
    claimed = bulk.update_returning_ids(
        WorkflowRun, {"status": running, "started_at": now, "attempts": bulk.Raw("attempts + 1"),
                      "next_attempt_at": None}, ids,
        "status = %s OR (status = %s AND started_at < %s)", [pending, running, bulk.db_time(stuck_before)])
    outcomes = {pk: RunOutcome("not_claimed") for pk in ids}
    if not claimed:
        return outcomes
    runs = list(WorkflowRun.objects.select_related("delivery").filter(pk__in=claimed).order_by("pk"))
    for run in runs:
        if run.attempts == 1 and run.delivery is not None:
            metrics.observe_lag(metrics.RUN_LAG, run.delivery.received_at)
    budget_end = time.monotonic() + cfg.publish_stuck_seconds / 2
    ended: list[_Ended] = []
    recorded_at = time.monotonic()
    try:
        for index, run in enumerate(runs):
            if time.monotonic() > budget_end:
                rest = [later.pk for later in runs[index:]]
                WorkflowRun.objects.filter(pk__in=rest, started_at=now, status=running).update(
                    status=pending, started_at=None, attempts=F("attempts") - 1)
                outcomes.update((pk, RunOutcome(pending, retry_in=0)) for pk in rest)
                break
            outcome, end = _run_workflow(run, now=now, max_attempts=cfg.workflow_max_attempts)
            outcomes[run.pk] = outcome
            if end is not None:
                ended.append(end)
            if ended and time.monotonic() - recorded_at >= RUN_RECORD_INTERVAL_SECONDS:
                _runs_record(ended, started_at=now)
                ended, recorded_at = [], time.monotonic()
    finally:
        # Also when something failed midway: what ran is recorded, not run again by the sweep.
        _runs_record(ended, started_at=now)
    return outcomes


def workflow_run_execute(*, run_id: int) -> RunOutcome:
    """One run: ``workflow_runs_execute`` with one id."""
    return workflow_runs_execute(run_ids=[run_id])[run_id]


def _run_workflow(run: WorkflowRun, *, now: datetime, max_attempts: int) -> tuple[RunOutcome, _Ended | None]:
    """Run one claimed run's workflow: its outcome, and its end to record (None: a retry, recorded here)."""
    def end(status: str, **fields: Any) -> tuple[RunOutcome, _Ended]:
        return RunOutcome(status), _Ended(run, status, fields)

    if run.delivery is None:
        return end(WorkflowRun.Status.FAILED, error="the delivery was deleted before the run")
    try:
        workflow = get_workflow(run.workflow)
        result = workflow.run(delivery_event(run.delivery, as_sent=True), run.parameters)
    except (TransientError, RateLimitExceeded) as exc:
        # TransientError includes the limiter's own outage (`RateLimiterUnavailable`): a
        # workflow that meets it waits and retries, it does not fail (issue 13).
        error = f"{type(exc).__name__}: {exc}"[:500]
        if run.attempts >= max_attempts:
            return end(WorkflowRun.Status.FAILED, error=error)
        wait = getattr(exc, "retry_after", None) or min(MAX_RETRY_COUNTDOWN_SECONDS, 5 * 2 ** (run.attempts - 1))
        wait = min(float(wait), MAX_RETRY_COUNTDOWN_SECONDS)
        WorkflowRun.objects.filter(pk=run.pk, started_at=now).update(
            status=WorkflowRun.Status.PENDING, error=error, next_attempt_at=now + timedelta(seconds=wait))
        metrics.WORKFLOW_RUNS.labels("retry").inc()
        return RunOutcome(WorkflowRun.Status.PENDING, retry_in=wait), None
    except Exception as exc:  # a workflow's own failure is recorded on the run, not raised
        logger.exception("workflow run %s (%s) failed", run.pk, run.workflow)
        return end(WorkflowRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
    return end(WorkflowRun.Status.SUCCEEDED, error="", result=result if isinstance(result, dict) else {})


def _runs_record(ended: list[_Ended], *, started_at: datetime) -> None:
    """Record the ends of runs claimed at ``started_at``, with their alerts, in one transaction;
    if that fails, each in its own (one run's bad alert must not leave the others running)."""
    if not ended:
        return
    try:
        _runs_record_together(ended, started_at=started_at)
    except Exception:
        if len(ended) == 1:
            raise
        logger.exception("recording %d workflow run ends together failed; recording them one by one", len(ended))
        for end in ended:
            try:
                _runs_record_together([end], started_at=started_at)
            except Exception:
                # Left running: the sweep takes it back after publish_stuck_seconds, as a killed worker's.
                logger.exception("could not record the end of workflow run %s", end.run.pk)


def _runs_record_together(ended: list[_Ended], *, started_at: datetime) -> None:
    finished_at = timezone.now()
    groups: dict[tuple[str, str], list[_Ended]] = {}
    for end in ended:
        groups.setdefault((end.status, end.fields.get("error", "")), []).append(end)
    with transaction.atomic():
        mine: set[int] = set()
        for (status, error), group in groups.items():
            values: dict[str, Any] = {"status": status, "finished_at": finished_at, "error": error}
            results = {end.run.pk: end.fields["result"] for end in group if "result" in end.fields}
            if results:
                values["result"] = bulk.case_by_id(WorkflowRun, "result", results)
            # Only runs still ours: one whose claim a sweep took over (held past
            # publish_stuck_seconds) belongs to its new claimant.
            mine.update(bulk.update_returning_ids(WorkflowRun, values, [end.run.pk for end in group],
                                                  "started_at = %s", [bulk.db_time(started_at)]))
        kept = [end for end in ended if end.run.pk in mine]
        for end in kept:
            end.run.status, end.run.finished_at, end.run.error = end.status, finished_at, end.fields.get("error", "")
            if "result" in end.fields:
                end.run.result = end.fields["result"]
        # A success only ends a live problem, so a second success of the same rule (and
        # connection) with no failure between ends nothing: announced once per batch.
        resolved: set[tuple[str, int | None]] = set()
        for end in kept:
            key = (end.run.rule_name, end.run.delivery.connection_id if end.run.delivery else None)
            if end.status == WorkflowRun.Status.SUCCEEDED:
                if key in resolved:
                    continue
                resolved.add(key)
            else:
                resolved = {done for done in resolved if done[0] != end.run.rule_name}
            _announce_run(end.run, end.status, end.fields.get("error", ""))
    for end in kept:
        metrics.WORKFLOW_RUNS.labels(end.status).inc()


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

    orphans = deliveries_orphaned_delete(batch_size=batch_size)
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
    return {"deliveries": deleted, "orphans": orphans, "counters": counters, "samples": samples,
            "bus_messages": messages}


def deliveries_orphaned_delete(*, connection_id: int | None = None, batch_size: int = 500) -> int:
    """Delete deliveries whose connection no longer exists (all of them, or ``connection_id``'s).

    The delivery table has no foreign-key constraint (`webhooks.models.Delivery.connection`):
    deleting a connection deletes its deliveries through Django's cascade, and a delivery that
    a request still in flight stored meanwhile is removed here, after that commit and by the
    hourly prune.
    """
    orphaned = Delivery.objects.filter(~Exists(Connection.objects.filter(pk=OuterRef("connection_id"))))
    if connection_id is not None:
        orphaned = orphaned.filter(connection_id=connection_id)
    total = 0
    while ids := list(orphaned.values_list("pk", flat=True)[:batch_size]):
        total += Delivery.objects.filter(pk__in=ids).delete()[1].get("webhooks.Delivery", 0)
    if total:
        logger.info("deleted %d deliveries of deleted connections", total)
    return total


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

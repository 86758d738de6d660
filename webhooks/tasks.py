"""Celery tasks: ids in, one service call, safe to run twice."""
from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from celery import shared_task
from kombu.exceptions import OperationalError

from synthorg.periodic import skip_when_disabled
from webhooks import services

logger = logging.getLogger(__name__)

# While a publication task runs, the runs its publication creates (the strategy enqueues them
# after its commit) are collected here and started by the same task right after, instead of
# going through the broker: one message less per batch and no second wait in the queue before
# a run starts (issue 15 §6). Pending rows are the outbox, so a task that dies first loses none.
_runs_started_here: ContextVar[list[int] | None] = ContextVar("webhooks_runs_started_here", default=None)


# One delivery. Nothing enqueues it any more (the receiver and the sweep send batches); it stays
# registered so messages queued by an earlier version are still consumed after an upgrade.
@shared_task(name="webhooks.delivery_publish", ignore_result=True)
def delivery_publish_task(delivery_id: int) -> str:
    try:
        return services.delivery_publish(delivery_id=delivery_id)
    except Exception:
        # The delivery is back to pending; the outbox sweep enqueues it again.
        logger.exception("publication of delivery %s failed; the sweep will retry it", delivery_id)
        return "failed"


@shared_task(name="webhooks.delivery_publish_batch", ignore_result=True)
def delivery_publish_batch_task(delivery_ids: list[int]) -> dict[str, int]:
    """The receiver's and the sweep's batches (``webhooks.dispatcher``), published together,
    then the workflow runs the publication created."""
    runs: list[int] = []
    token = _runs_started_here.set(runs)
    try:
        report = services.deliveries_publish(delivery_ids=delivery_ids)
    except Exception:
        # The batch is back to pending (or, if even that failed, claimed until publish_stuck_seconds).
        logger.exception("publication of %d deliveries failed; the sweep will retry them", len(delivery_ids))
        counts = {"failed": len(delivery_ids)}
    else:
        for delivery_id, exc in report.failed.items():
            logger.error("publication of delivery %s failed; the sweep will retry it", delivery_id, exc_info=exc)
        counts = report.counts()
    finally:
        _runs_started_here.reset(token)
    if runs:
        try:
            _runs_execute(runs)
        except Exception:
            logger.exception("%d workflow runs could not be started here; the sweep will enqueue them", len(runs))
    return counts


@shared_task(name="webhooks.publication_sweep", ignore_result=True)
@skip_when_disabled
def publication_sweep_task() -> dict[str, int]:
    return services.publication_sweep()


# One run. Nothing enqueues it any more (runs go in `webhooks.workflow_run_batch` messages, even
# the operator's retry of one); it stays registered so messages and countdown retries queued by
# an earlier version are still consumed after an upgrade.
@shared_task(name="webhooks.workflow_run", bind=True, ignore_result=True, max_retries=None)
def workflow_run_task(self: Any, run_id: int) -> str:
    outcome = services.workflow_run_execute(run_id=run_id)
    if outcome.retry_in is not None:
        try:
            raise self.retry(countdown=outcome.retry_in, retry=False)
        except OperationalError:
            logger.warning("broker unavailable; run %s is left to the outbox sweep", run_id)
    return outcome.status


@shared_task(name="webhooks.workflow_run_batch", ignore_result=True)
def workflow_run_batch_task(run_ids: list[int]) -> dict[str, int]:
    """Runs the sweep found, an operator's retry, a retry's countdown, or a publication batch's
    runs when it was published outside a worker task: claimed together, run in turn."""
    return _runs_execute(run_ids)


def _runs_execute(run_ids: list[int]) -> dict[str, int]:
    """Execute runs in this task. Those to retry go back to the broker as one message per wait
    (a new message, not this one again: a redelivery of this one claims nothing it finished)."""
    outcomes = services.workflow_runs_execute(run_ids=run_ids)
    retries: dict[float, list[int]] = {}
    counts: dict[str, int] = {}
    for run_id, outcome in outcomes.items():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.retry_in is not None:
            retries.setdefault(outcome.retry_in, []).append(run_id)
    for wait, ids in retries.items():
        workflow_runs_enqueue(ids, countdown=wait)
    return counts


@shared_task(name="webhooks.deliveries_prune", ignore_result=True)
@skip_when_disabled
def deliveries_prune_task() -> dict[str, int]:
    return services.deliveries_prune()


def workflow_run_enqueue(run_id: int) -> bool:
    return workflow_runs_enqueue([run_id]) == 1


def workflow_runs_enqueue(run_ids: list[int], *, countdown: float | None = None) -> int:
    """One ``webhooks.workflow_run_batch`` message per ``MAX_BATCH`` runs; how many runs were
    enqueued (the others wait for the outbox sweep: pending rows are the outbox)."""
    from webhooks.dispatcher import MAX_BATCH

    collector = _runs_started_here.get()
    if collector is not None and countdown is None:
        collector.extend(run_ids)
        return len(run_ids)
    enqueued = 0
    for start in range(0, len(run_ids), MAX_BATCH):
        chunk = run_ids[start:start + MAX_BATCH]
        try:
            workflow_run_batch_task.apply_async((chunk,), countdown=countdown, retry=False)
        except (OperationalError, OSError) as exc:
            logger.warning("broker unavailable, %d workflow runs left to the outbox sweep: %s", len(chunk), exc)
            continue
        enqueued += len(chunk)
    return enqueued

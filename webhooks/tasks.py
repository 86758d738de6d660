"""Celery tasks: ids in, one service call, safe to run twice."""
from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from kombu.exceptions import OperationalError

from synthorg.periodic import skip_when_disabled
from webhooks import services

logger = logging.getLogger(__name__)


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
    """The receiver's batches (``webhooks.dispatcher``): each delivery published on its own."""
    outcomes: dict[str, int] = {}
    for delivery_id in delivery_ids:
        outcome = delivery_publish_task.run(delivery_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


@shared_task(name="webhooks.publication_sweep", ignore_result=True)
@skip_when_disabled
def publication_sweep_task() -> dict[str, int]:
    return services.publication_sweep()


@shared_task(name="webhooks.workflow_run", bind=True, ignore_result=True, max_retries=None)
def workflow_run_task(self: Any, run_id: int) -> str:
    outcome = services.workflow_run_execute(run_id=run_id)
    if outcome.retry_in is not None:
        try:
            raise self.retry(countdown=outcome.retry_in, retry=False)
        except OperationalError:
            logger.warning("broker unavailable; run %s is left to the outbox sweep", run_id)
    return outcome.status


@shared_task(name="webhooks.deliveries_prune", ignore_result=True)
@skip_when_disabled
def deliveries_prune_task() -> dict[str, int]:
    return services.deliveries_prune()


def workflow_run_enqueue(run_id: int) -> bool:
    try:
        workflow_run_task.apply_async((run_id,), retry=False)
    except (OperationalError, OSError) as exc:
        logger.warning("broker unavailable, workflow run %s left to the outbox sweep: %s", run_id, exc)
        return False
    return True

"""Celery wrappers: ids in, one service call, safe to run twice."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from notifications import sending, services
from synthorg.periodic import skip_when_disabled

# Longer waits are left to the sweep: a countdown must stay well below the broker's visibility
# timeout, or the message is handed out twice (harmless here, but noisy).
MAX_COUNTDOWN_SECONDS = 600
# The countdown is measured by the worker's clock, next_attempt_at by the writer's.
CLOCK_SKEW_SECONDS = 2.0


@shared_task(name="notifications.alert_send", ignore_result=True, acks_late=True)
def alert_send_task(alert_id: str) -> dict[str, Any]:
    outcome = sending.alert_send(alert_id=alert_id, early_seconds=CLOCK_SKEW_SECONDS)
    if outcome.result == "retry" and outcome.retry_at is not None:
        from django.utils import timezone

        countdown = max(1.0, (outcome.retry_at - timezone.now()).total_seconds())
        if countdown <= MAX_COUNTDOWN_SECONDS:
            # If this enqueue is lost (broker down), the sweep sends the row when it is due.
            alert_send_task.apply_async((alert_id,), countdown=countdown, retry=False)
    return {"result": outcome.result, "alert": outcome.alert_id}


@shared_task(name="notifications.alerts_sweep", ignore_result=True)
@skip_when_disabled
def alerts_sweep_task() -> dict[str, Any]:
    """Send what a dead worker or a lost message left: due retries and expired claims."""
    ids = sending.alerts_due()
    for alert_id in ids:
        alert_send_task.apply_async((alert_id,), retry=False)
    return {"queued": len(ids)}


@shared_task(name="notifications.problems_evaluate", ignore_result=True)
@skip_when_disabled
def problems_evaluate_task() -> dict[str, Any]:
    report = services.problems_evaluate()
    return {"evaluated": report.evaluated, "orphans_resolved": report.orphans_resolved,
            "reminders": report.reminders}

"""Celery wrappers: ids in, one service call, safe to run twice."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from oauthflow import services
from synthorg.periodic import skip_when_disabled


@shared_task(name="oauthflow.tokens_refresh_due")
@skip_when_disabled
def tokens_refresh_due_task() -> dict[str, Any]:
    """The OAuthTokenManager beat task: queue one refresh task per due token."""
    due = services.tokens_refresh_due()
    for token_id in due:
        token_refresh_task.delay(token_id)
    return {"queued": len(due)}


@shared_task(name="oauthflow.token_refresh")
def token_refresh_task(token_id: int) -> str:
    return services.token_refresh(token_id=token_id).result


@shared_task(name="oauthflow.device_flow_poll")
def device_flow_poll_task(flow_id: int) -> float | None:
    """One device-flow poll; queues the next one with a countdown instead of sleeping."""
    delay = services.device_flow_poll(flow_id=flow_id)
    if delay is not None:
        services.schedule_device_poll(flow_id, delay)
    return delay


@shared_task(name="oauthflow.states_purge")
@skip_when_disabled
def states_purge_task() -> int:
    return services.states_purge()

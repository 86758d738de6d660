"""Thin Celery wrappers over the health services: ids in, one service call, safe to run twice."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from synthorg.config import get_config
from synthorg.periodic import skip_when_disabled


@shared_task(name="integrations.health_sweep", ignore_result=True)
@skip_when_disabled
def health_sweep_task() -> dict[str, Any]:
    from integrations.prober import health_sweep

    report = health_sweep()
    return {"claimed": report.claimed, "tasks": report.tasks}


@shared_task(name="integrations.connections_probe", ignore_result=True)
@skip_when_disabled
def connections_probe_task(connection_ids: list[int]) -> dict[str, Any]:
    """Probe these connections now; a second run records a second result, nothing worse."""
    from integrations.health import connections_probe

    outcomes = connections_probe(connection_ids, threads=get_config().integrations.health.probe_threads)
    return {"probed": len(outcomes)}


@shared_task(name="integrations.secret_deletions_retry", ignore_result=True)
def secret_deletions_retry_task() -> dict[str, int]:
    """Destroy again the secret-manager secrets a delete could not destroy (idempotent)."""
    from integrations.secrets.managed import pending_deletions_retry

    return pending_deletions_retry()

from __future__ import annotations

from celery import shared_task

from synthorg import services


@shared_task(name="synthorg.ping")
def ping_task(token: str) -> str:
    """Round-trip probe: echoes its argument (used by the smoke test and operators)."""
    return f"pong:{token}"


@shared_task(name="synthorg.heartbeat_record", ignore_result=True)
def heartbeat_record_task() -> int:
    return services.heartbeat_record(name="beat").count

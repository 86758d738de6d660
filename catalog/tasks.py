"""Celery wrappers: ids in, one service call, safe to run twice."""
from __future__ import annotations

from celery import shared_task

from catalog import services


@shared_task(name="catalog.verify_job_run")
def verify_job_run_task(job_id: str) -> str | None:
    job = services.verify_job_run(job_id=job_id)
    return job.status if job else None

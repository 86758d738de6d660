"""The Celery app. Settings come from Django (``CELERY_*``), tasks are autodiscovered.

Periodic tasks are declared in code (``synthorg.periodic``) and written into
django-celery-beat's tables by ``SynthorgScheduler`` each time beat starts, so no
operator has to click them into the admin and intervals follow the configuration.
"""
from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthorg.settings")

app = Celery("synthorg")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_checked = False


# `import_modules` is sent by the loader when the worker or beat starts, before beat builds
# its scheduler (which reads the configuration: `beat_init` came too late and beat died with a
# traceback, issue 13 §4). SystemExit passes through Celery's signal dispatch (it catches
# Exception only), so the process stops with the one line and code 2.
@signals.import_modules.connect
@signals.worker_init.connect
@signals.beat_init.connect
def _check_configuration(**_: Any) -> None:
    """Workers and beat refuse to start on a broken configuration, like the web server."""
    global _checked
    if _checked:
        return
    _checked = True
    import django

    from synthorg.startup import check_or_exit, exit_on_configuration_error

    with exit_on_configuration_error():
        django.setup()
    check_or_exit()


# --- metrics (synthorg/metrics.py): task run time and failures by task name -------------------
_task_started: dict[str, float] = {}


@signals.task_prerun.connect
def _metrics_task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id:
        _task_started[task_id] = time.perf_counter()
    if task is not None:
        from synthorg.metrics import TASK_FAILURES

        TASK_FAILURES.labels(task.name)  # the task's failure series exists (at 0) from its first run


@signals.task_postrun.connect
def _metrics_task_finished(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    started = _task_started.pop(task_id or "", None)
    if started is not None and task is not None:
        from synthorg.metrics import TASK_SECONDS

        TASK_SECONDS.labels(task.name).observe(time.perf_counter() - started)


@signals.task_failure.connect
def _metrics_task_failed(sender: Any = None, **_: Any) -> None:
    if sender is not None:
        from synthorg.metrics import TASK_FAILURES

        TASK_FAILURES.labels(sender.name).inc()


@signals.worker_process_init.connect
def _metrics_pool_process_started(**_: Any) -> None:
    from synthorg.metrics import process_started

    process_started("worker")


@signals.worker_process_shutdown.connect
def _metrics_pool_process_stopped(pid: int | None = None, **_: Any) -> None:
    from synthorg.metrics import process_dead

    process_dead(pid or os.getpid())


@signals.worker_ready.connect
def _metrics_endpoint(**_: Any) -> None:
    """SYNTHORG_WORKER_METRICS_BIND=HOST:PORT: the worker answers GET /metrics itself (for hosts
    or containers where no web process reads its PROMETHEUS_MULTIPROC_DIR)."""
    bind = os.environ.get("SYNTHORG_WORKER_METRICS_BIND", "").strip()
    if bind:
        from synthorg.metrics import serve_in_background

        serve_in_background(bind)

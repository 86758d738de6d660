"""The Celery app. Settings come from Django (``CELERY_*``), tasks are autodiscovered.

Periodic tasks are declared in code (``synthorg.periodic``) and written into
django-celery-beat's tables by ``SynthorgScheduler`` each time beat starts, so no
operator has to click them into the admin and intervals follow the configuration.
"""
from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthorg.settings")

app = Celery("synthorg")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _check_configuration(**_: Any) -> None:
    """Workers and beat refuse to start on a broken configuration, like the web server."""
    import django

    from synthorg.startup import check_or_exit, exit_on_configuration_error

    with exit_on_configuration_error():
        django.setup()
    check_or_exit()

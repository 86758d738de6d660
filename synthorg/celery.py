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

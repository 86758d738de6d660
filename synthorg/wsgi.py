"""WSGI entry point (gunicorn synthorg.wsgi). Refuses to serve on a broken configuration.

Webhook receiver requests are served by a leaner handler of the same project (`webhooks.wsgi`).
"""
from __future__ import annotations

import os
import sys

from django.core.wsgi import get_wsgi_application

from synthorg.gc_startup import freeze_startup_heap
from synthorg.startup import check_or_exit, exit_on_configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthorg.settings")

# gunicorn's arbiter respawns a worker that exits with any code but its "worker boot error"
# (3), which halts the master instead: a broken configuration once respawned workers 3,534
# times in 20 minutes while the socket accepted connections and hung (issue 13 §4).
GUNICORN_WORKER_BOOT_ERROR = 3


def _boot_error_code(code: object) -> object:
    arbiter = sys.modules.get("gunicorn.arbiter")
    if arbiter is None:
        return code
    return getattr(arbiter.Arbiter, "WORKER_BOOT_ERROR", GUNICORN_WORKER_BOOT_ERROR)


try:
    with exit_on_configuration_error():
        from webhooks.wsgi import receiver_fast_path

        application = receiver_fast_path(get_wsgi_application())
    check_or_exit()
    # Loaded and checked: the start-up heap stays out of every later full GC pass.
    freeze_startup_heap()
except SystemExit as stop:
    if stop.code in (0, None):
        raise
    # The one line is already on stderr; only the exit code changes under gunicorn.
    raise SystemExit(_boot_error_code(stop.code)) from None

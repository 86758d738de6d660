"""WSGI entry point (gunicorn synthorg.wsgi). Refuses to serve on a broken configuration.

Webhook receiver requests are served by a leaner handler of the same project (`webhooks.wsgi`).
"""
from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from synthorg.startup import check_or_exit, exit_on_configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthorg.settings")

with exit_on_configuration_error():
    from webhooks.wsgi import receiver_fast_path

    application = receiver_fast_path(get_wsgi_application())
check_or_exit()

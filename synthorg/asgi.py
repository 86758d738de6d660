from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from synthorg.startup import check_or_exit, exit_on_configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthorg.settings")

with exit_on_configuration_error():
    application = get_asgi_application()
check_or_exit()

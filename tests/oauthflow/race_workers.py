"""Child-process body for the refresh race (no tests here; no Django import at the top)."""
from __future__ import annotations

import os
from typing import Any


def refresher(db_name: str | None, connection_id: int, barrier: Any, results: Any) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    if db_name:
        settings.DATABASES["default"]["NAME"] = db_name
    django.setup()
    from django.db import connections

    from integrations.models import Connection
    from oauthflow.services import get_access_token

    connection = Connection.objects.get(pk=connection_id)  # opens the DB connection before the race
    barrier.wait(timeout=60)
    try:
        results.put(get_access_token(connection))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(f"error: {type(exc).__name__}: {exc}")
    finally:
        connections.close_all()

"""Service-level operations of the project package: heartbeats and readiness."""
from __future__ import annotations

import logging
from typing import Any

import kombu
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from synthorg.models import ServiceHeartbeat

logger = logging.getLogger(__name__)


def heartbeat_record(*, name: str) -> ServiceHeartbeat:
    now = timezone.now()
    updated = ServiceHeartbeat.objects.filter(name=name).update(last_seen_at=now, count=F("count") + 1)
    if not updated:
        beat, created = ServiceHeartbeat.objects.get_or_create(name=name, defaults={"last_seen_at": now, "count": 1})
        if not created:
            ServiceHeartbeat.objects.filter(pk=beat.pk).update(last_seen_at=now, count=F("count") + 1)
    return ServiceHeartbeat.objects.get(name=name)


def database_ready() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"; the type is enough detail
        logger.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return False, "unreachable"
    return True, "ok"


def broker_ready(timeout: float = 2.0) -> tuple[bool, str]:
    try:
        with kombu.Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout,
                              transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            # A connection that opens lazily proves nothing: touch the transport.
            _ = conn.default_channel
    except Exception as exc:  # kombu raises transport-specific errors
        logger.warning("readiness: broker unreachable (%s)", type(exc).__name__)
        return False, "unreachable"
    return True, "ok"


def secret_backend_ready() -> tuple[bool, str, dict[str, Any]] | None:
    """The configured secret manager (issue 14): reachable, unsealed, authenticated. None when
    secrets live in the database or the environment (nothing more to ask). The third item is
    the three answers for /readyz, without the error text (it may name a URL or a path)."""
    from integrations.secrets import managed
    from synthorg.config import get_config

    name = get_config().integrations.secret_backend.backend_type
    if name not in managed.MANAGED_BACKENDS:
        return None
    state = managed.manager(name).status()
    parts = {"backend": name, **{key: bool(state[key]) for key in ("reachable", "unsealed", "authenticated")}}
    if state["ok"]:
        return True, "ok", parts
    reason = ("unreachable" if not state["reachable"] else "sealed" if not state["unsealed"]
              else "not authenticated")
    logger.warning("readiness: secret backend %s %s", name, reason)
    return False, reason, parts


def readiness() -> dict[str, Any]:
    db_ok, db_detail = database_ready()
    broker_ok, broker_detail = broker_ready()
    checks = {"database": db_detail, "broker": broker_detail}
    ready = db_ok and broker_ok
    secrets = secret_backend_ready()
    if secrets is not None:
        ready = ready and secrets[0]
        checks["secret_backend"] = secrets[1]
        checks["secret_manager"] = secrets[2]
    return {"ready": ready, "checks": checks}

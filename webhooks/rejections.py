"""Rejected and duplicate requests: counted per connection, reason and minute, with a bounded
sample for the activity log. Never their bodies, so an unsigned flood cannot fill the disk."""
from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from integrations.models import Connection
from synthorg.config import get_config
from synthorg.metrics import webhook_rejected
from webhooks.models import ReceiptSample, RejectionCount

logger = logging.getLogger(__name__)

# With the database down, one warning per this many seconds, not one per refused request.
UNRECORDED_LOG_INTERVAL_SECONDS = 60.0
_unrecorded_lock = threading.Lock()
_unrecorded = {"logged_at": 0.0, "since": 0}


def _count(connection_name: str, reason: str) -> int:
    minute = timezone.now().replace(second=0, microsecond=0)
    rows = RejectionCount.objects.filter(connection_name=connection_name, reason=reason, minute=minute)
    if not rows.update(count=F("count") + 1):
        try:
            with transaction.atomic():
                RejectionCount.objects.create(connection_name=connection_name, reason=reason, minute=minute, count=1)
                return 1
        except IntegrityError:
            rows.update(count=F("count") + 1)  # another process created the minute's row first
    return rows.values_list("count", flat=True).first() or 1


def rejection_record(*, connection: Connection | None, connection_name: str, reason: str, status: int,
                     path_event_type: str, remote_ip: str | None, outcome: str = "rejected",
                     delivery_id: int | None = None) -> None:
    # Names of connections that do not exist are counted together under "": an attacker
    # inventing names must not be able to create rows faster than reasons x minutes.
    name = connection.name if connection is not None else ""
    webhook_rejected(connection_type=connection.connection_type if connection is not None else None,
                     connection_name=name, reason=reason)
    # The counters and samples are the activity log of refusals, not the refusal itself: when
    # the database cannot take them (down, restarting), the sender still gets its 401 or 429,
    # never a 500 (the Prometheus counter above has it anyway).
    try:
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():  # a savepoint: a failure leaves the caller's transaction usable
                _record(connection, name, connection_name, reason, status, path_event_type, remote_ip, outcome,
                        delivery_id)
        else:
            _record(connection, name, connection_name, reason, status, path_event_type, remote_ip, outcome,
                    delivery_id)
    except DatabaseError as exc:
        _unrecorded_warning(exc)


def _record(connection: Connection | None, name: str, connection_name: str, reason: str, status: int,
            path_event_type: str, remote_ip: str | None, outcome: str, delivery_id: int | None) -> None:
    count = _count(name, reason)
    if count <= get_config().integrations.webhooks.rejection_samples_per_minute:
        ReceiptSample.objects.create(connection=connection, connection_name=name or connection_name[:128],
                                     outcome=outcome, reason=reason, status_code=status,
                                     path_event_type=path_event_type[:100], delivery_id=delivery_id,
                                     remote_ip=remote_ip, received_at=timezone.now())


def _unrecorded_warning(exc: DatabaseError) -> None:
    now = time.monotonic()
    with _unrecorded_lock:
        _unrecorded["since"] += 1
        if now - _unrecorded["logged_at"] < UNRECORDED_LOG_INTERVAL_SECONDS:
            return
        count, _unrecorded["since"], _unrecorded["logged_at"] = _unrecorded["since"], 0, now
    # The exception's class only: a database message may quote values.
    logger.warning("%d refused webhook requests not recorded in the activity log: the database is "
                   "unavailable (%s)", count, type(exc).__name__)

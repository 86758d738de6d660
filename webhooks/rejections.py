"""Rejected and duplicate requests: counted per connection, reason and minute, with a bounded
sample for the activity log. Never their bodies, so an unsigned flood cannot fill the disk."""
from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from integrations.models import Connection
from synthorg.config import get_config
from synthorg.metrics import webhook_rejected
from webhooks.models import ReceiptSample, RejectionCount


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
    count = _count(name, reason)
    if count <= get_config().integrations.webhooks.rejection_samples_per_minute:
        ReceiptSample.objects.create(connection=connection, connection_name=name or connection_name[:128],
                                     outcome=outcome, reason=reason, status_code=status,
                                     path_event_type=path_event_type[:100], delivery_id=delivery_id,
                                     remote_ip=remote_ip, received_at=timezone.now())

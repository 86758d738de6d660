"""The database store behind ``synthorg.bus`` (BusMessage, BusDelivery)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from webhooks.models import BusDelivery, BusMessage


class DatabaseBusStore:
    def record(self, channel: str, event_id: str, event: Mapping[str, Any]) -> tuple[BusMessage, bool]:
        try:
            with transaction.atomic():
                return BusMessage.objects.get_or_create(
                    channel=channel, event_id=event_id,
                    defaults={"payload": dict(event), "published_at": timezone.now()})
        except IntegrityError:
            # Two publishers raced on the unique (channel, event_id): the other one won.
            return BusMessage.objects.get(channel=channel, event_id=event_id), False

    def deliver_once(self, message: BusMessage, subscriber: str, call: Callable[[], None]) -> bool:
        try:
            with transaction.atomic():
                # The insert comes first: a concurrent publisher of the same event blocks on
                # the unique index until this transaction ends, then sees IntegrityError.
                BusDelivery.objects.create(message=message, subscriber=subscriber, delivered_at=timezone.now())
                call()
        except IntegrityError:
            if BusDelivery.objects.filter(message=message, subscriber=subscriber).exists():
                return False
            raise
        return True

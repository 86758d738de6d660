"""The database store behind ``synthorg.bus`` (BusMessage, BusDelivery)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from webhooks import bulk
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

    def record_many(self, channel: str, events: Sequence[Mapping[str, Any]]) -> dict[str, tuple[BusMessage, bool]]:
        now = timezone.now()
        new = {str(event["event_id"]): BusMessage(channel=channel, event_id=str(event["event_id"]),
                                                  payload=dict(event), published_at=now) for event in events}
        # One statement: the messages not recorded yet are inserted, the others skipped.
        found: dict[str, tuple[BusMessage, bool]] = {}
        for pk, event_id in bulk.insert_returning(BusMessage, list(new.values()), ["id", "event_id"]):
            new[event_id].pk = pk
            found[event_id] = (new[event_id], True)
        if len(found) < len(new):
            # Published before (a batch handed back, or another publisher): the stored message.
            found.update((message.event_id, (message, False)) for message in BusMessage.objects.filter(
                channel=channel, event_id__in=[event_id for event_id in new if event_id not in found]))
        return found

    def deliver_once_many(self, items: Sequence[tuple[BusMessage, Mapping[str, Any]]], subscriber: str,
                          call: Callable[[list[Mapping[str, Any]]], None]) -> list[Mapping[str, Any]]:
        now = timezone.now()
        with transaction.atomic():
            # Rows already there are skipped: those events were handled. A concurrent publisher's
            # row for the same event makes this statement wait for its transaction: committed,
            # the event is skipped here; rolled back, it is this transaction's.
            taken = {message_id for (message_id,) in bulk.insert_returning(
                BusDelivery, [BusDelivery(message=message, subscriber=subscriber, delivered_at=now)
                              for message, _ in items], ["message"])}
            fresh = [event for message, event in items if message.pk in taken]
            if fresh:
                call(fresh)
        return fresh

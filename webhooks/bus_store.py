"""The database store behind ``synthorg.bus`` (BusMessage, BusDelivery)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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

    def record_many(self, channel: str, events: Sequence[Mapping[str, Any]]) -> dict[str, tuple[BusMessage, bool]]:
        event_ids = [str(event["event_id"]) for event in events]
        found: dict[str, tuple[BusMessage, bool]] = {
            message.event_id: (message, False)
            for message in BusMessage.objects.filter(channel=channel, event_id__in=event_ids)}
        new = [BusMessage(channel=channel, event_id=str(event["event_id"]), payload=dict(event),
                          published_at=timezone.now()) for event in events if str(event["event_id"]) not in found]
        try:
            with transaction.atomic():
                # Plain INSERT (not ignore_conflicts) so the rows come back with their ids.
                found.update((message.event_id, (message, True)) for message in BusMessage.objects.bulk_create(new))
        except IntegrityError:
            # Another publisher recorded some of them meanwhile: one at a time, as `record`.
            for event in events:
                if str(event["event_id"]) not in found:
                    found[str(event["event_id"])] = self.record(channel, str(event["event_id"]), event)
        return found

    def deliver_once_many(self, items: Sequence[tuple[BusMessage, Mapping[str, Any]]], subscriber: str,
                          call: Callable[[list[Mapping[str, Any]]], None]) -> list[Mapping[str, Any]]:
        with transaction.atomic():
            done = set(BusDelivery.objects.filter(subscriber=subscriber, message__in=[m for m, _ in items])
                       .values_list("message_id", flat=True))
            fresh = [(message, event) for message, event in items if message.pk not in done]
            if fresh:
                # A concurrent publisher of the same events blocks on the unique index until this
                # transaction ends, then sees IntegrityError; `publish_many` then hands its events
                # one by one, and each one this transaction delivered is skipped.
                now = timezone.now()
                BusDelivery.objects.bulk_create(
                    [BusDelivery(message=message, subscriber=subscriber, delivered_at=now) for message, _ in fresh])
                call([event for _, event in fresh])
        return [event for _, event in fresh]

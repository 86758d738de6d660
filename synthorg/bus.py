"""The message bus: named channels, ``publish(channel, event)``, subscribers registered in code.

Guarantees (given the store registered by the owning app):

* Messages are persisted with their channel and event id; publishing the same
  ``event["event_id"]`` twice records one message (publication is idempotent).
* Each subscriber handles each message once: its handler runs inside a transaction together
  with the row that records "subscriber S handled message M" (unique), so a crash before
  commit leaves no trace and the next publication hands the event again, while a second
  publication after a commit skips it.
* Handlers must therefore keep their effects in the database transaction they are given
  (enqueue work with ``transaction.on_commit`` / ``delay_on_commit``), never call out.
* ``publish_many`` gives the same guarantees for a batch at a fraction of the cost: the
  messages are recorded together and each subscriber handles the batch's new events in one
  transaction (with its batch handler when it registered one). When that transaction fails,
  the events are handed one by one, so one bad event fails alone (issue 15 §6).

Call ``publish`` from a task or after commit (``transaction.on_commit``), never inside a
request's transaction. ``synthorg`` imports no app code: the app that owns the tables
registers its store with ``set_store`` in ``AppConfig.ready()``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Handler = Callable[[str, Mapping[str, Any]], None]
BatchHandler = Callable[[str, Sequence[Mapping[str, Any]]], None]


class BusStore(Protocol):
    def record(self, channel: str, event_id: str, event: Mapping[str, Any]) -> tuple[Any, bool]:
        """Persist the message (or find it); returns (message reference, created)."""

    def deliver_once(self, message: Any, subscriber: str, call: Callable[[], None]) -> bool:
        """Run ``call`` and record the delivery in one transaction; False when already delivered."""

    def record_many(self, channel: str, events: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Any, bool]]:
        """``record`` for several events (event ids distinct): event id -> (message reference, created)."""

    def deliver_once_many(self, items: Sequence[tuple[Any, Mapping[str, Any]]], subscriber: str,
                          call: Callable[[list[Mapping[str, Any]]], None]) -> list[Mapping[str, Any]]:
        """In one transaction, record the delivery of every (message, event) not yet delivered to
        ``subscriber`` and run ``call`` with those events; returns them (the others were delivered)."""


@dataclass(frozen=True)
class Subscriber:
    channel: str
    name: str
    handler: Handler
    batch_handler: BatchHandler | None = None

    def handle_many(self, channel: str, events: Sequence[Mapping[str, Any]]) -> None:
        if self.batch_handler is not None:
            self.batch_handler(channel, events)
            return
        for event in events:
            self.handler(channel, event)


@dataclass
class PublishResult:
    channel: str
    event_id: str
    created: bool
    delivered_to: list[str] = field(default_factory=list)
    already_delivered: list[str] = field(default_factory=list)


_subscribers: dict[str, dict[str, Subscriber]] = {}
_store: BusStore | None = None


def channel_name(channel: str) -> str:
    """``#webhooks`` and ``webhooks`` name the same channel."""
    name = channel.lstrip("#")
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"invalid channel name {channel!r}")
    return name


def set_store(store: BusStore) -> None:
    global _store
    _store = store


def subscribe(channel: str, name: str, handler: Handler, *, batch_handler: BatchHandler | None = None) -> None:
    """Register ``handler`` under a stable ``name`` (the name is what "once" is counted by).

    ``batch_handler(channel, events)``, when given, must do what ``handler`` does for each event;
    ``publish_many`` calls it once per batch instead of ``handler`` once per event.
    """
    _subscribers.setdefault(channel_name(channel), {})[name] = Subscriber(channel_name(channel), name, handler,
                                                                         batch_handler)


def subscribers(channel: str) -> list[Subscriber]:
    return list(_subscribers.get(channel_name(channel), {}).values())


def publish(channel: str, event: Mapping[str, Any]) -> PublishResult:
    """Persist ``event`` on ``channel`` and hand it to every subscriber not yet done with it.

    A handler's exception propagates after the earlier subscribers' deliveries are committed:
    publishing again retries only the subscribers that did not finish.
    """
    if _store is None:
        raise RuntimeError("no bus store registered (the webhooks app registers it in ready())")
    name = channel_name(channel)
    event_id = str(event["event_id"])
    message, created = _store.record(name, event_id, event)
    result = PublishResult(channel=name, event_id=event_id, created=created)
    for subscriber in subscribers(name):
        delivered = _store.deliver_once(message, subscriber.name,
                                        lambda s=subscriber: s.handler(name, event))  # type: ignore[misc]
        (result.delivered_to if delivered else result.already_delivered).append(subscriber.name)
    logger.info("bus #%s event %s: delivered to %s, already delivered to %s", name, event_id,
                result.delivered_to, result.already_delivered)
    return result


@dataclass
class BatchPublishResult:
    channel: str
    # Event id -> what happened to it; an event in ``failed`` is missing from the subscribers
    # that raised for it and from every later one: publishing it again hands it to them.
    results: dict[str, PublishResult]
    failed: dict[str, BaseException] = field(default_factory=dict)


def publish_many(channel: str, events: Sequence[Mapping[str, Any]]) -> BatchPublishResult:
    """``publish`` for a batch: the same guarantees, one transaction per subscriber and batch.

    A subscriber's failure does not propagate: the batch is handed to it again one event at a
    time, and the events that still fail are reported in ``failed`` (and not handed to the
    later subscribers) while the others go on. A failure of the store itself propagates.
    """
    if _store is None:
        raise RuntimeError("no bus store registered (the webhooks app registers it in ready())")
    name = channel_name(channel)
    unique = list({str(event["event_id"]): event for event in events}.items())
    messages = _store.record_many(name, [event for _, event in unique])
    result = BatchPublishResult(channel=name, results={
        event_id: PublishResult(channel=name, event_id=event_id, created=messages[event_id][1])
        for event_id, _ in unique})
    pending = unique
    for subscriber in subscribers(name):
        if not pending:
            break
        items = [(messages[event_id][0], event) for event_id, event in pending]
        try:
            fresh = {str(event["event_id"]) for event in _store.deliver_once_many(
                items, subscriber.name, lambda batch, s=subscriber: s.handle_many(name, batch))}  # type: ignore[misc]
        except Exception as exc:
            fresh = set()
            if len(items) == 1:
                result.failed[pending[0][0]] = exc  # a batch of one was that event on its own
            else:
                # Nothing of the batch's transaction stayed: hand each event alone, so one bad
                # event (or a race with another publisher) does not hold back the others.
                logger.warning("bus #%s: subscriber %s failed on a batch of %d (%s: %s); handing the events one by one",
                               name, subscriber.name, len(items), type(exc).__name__, exc)
                fresh = _deliver_each(_store, name, subscriber, items, result.failed)
        for event_id, _ in pending:
            if event_id in result.failed:
                continue
            outcome = result.results[event_id]
            (outcome.delivered_to if event_id in fresh else outcome.already_delivered).append(subscriber.name)
        pending = [(event_id, event) for event_id, event in pending if event_id not in result.failed]
    logger.info("bus #%s: %d events published, %d failed", name, len(unique) - len(result.failed),
                len(result.failed))
    return result


def _deliver_each(store: BusStore, channel: str, subscriber: Subscriber, items: Sequence[tuple[Any, Mapping[str, Any]]],
                  failed: dict[str, BaseException]) -> set[str]:
    """``deliver_once`` per event: the ids of the events delivered now; failures go to ``failed``."""
    fresh = set()
    for message, event in items:
        event_id = str(event["event_id"])
        try:
            if store.deliver_once(message, subscriber.name,
                                  lambda e=event: subscriber.handler(channel, e)):  # type: ignore[misc]
                fresh.add(event_id)
        except Exception as exc:
            failed[event_id] = exc
    return fresh

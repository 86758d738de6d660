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

Call ``publish`` from a task or after commit (``transaction.on_commit``), never inside a
request's transaction. ``synthorg`` imports no app code: the app that owns the tables
registers its store with ``set_store`` in ``AppConfig.ready()``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Handler = Callable[[str, Mapping[str, Any]], None]


class BusStore(Protocol):
    def record(self, channel: str, event_id: str, event: Mapping[str, Any]) -> tuple[Any, bool]:
        """Persist the message (or find it); returns (message reference, created)."""

    def deliver_once(self, message: Any, subscriber: str, call: Callable[[], None]) -> bool:
        """Run ``call`` and record the delivery in one transaction; False when already delivered."""


@dataclass(frozen=True)
class Subscriber:
    channel: str
    name: str
    handler: Handler


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


def subscribe(channel: str, name: str, handler: Handler) -> None:
    """Register ``handler`` under a stable ``name`` (the name is what "once" is counted by)."""
    _subscribers.setdefault(channel_name(channel), {})[name] = Subscriber(channel_name(channel), name, handler)


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

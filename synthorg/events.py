"""Operational events: how apps tell whoever listens (alerts) that something went wrong or right.

`synthorg` imports no app code, and `integrations`, `oauthflow` and `webhooks` must not
import `notifications` (imports flow one way), so the apps that see a state change call
``emit()`` here and `notifications` subscribes in its ``AppConfig.ready()``. An explicit
registry, not a Django signal: the call site is visible, and a listener's failure is the
caller's failure.

Call ``emit()`` **inside** the transaction that writes the state change: a listener writes
its own rows (the alert outbox) in that same transaction, so the change and the alert it
causes commit or roll back together (issue 16, "exactly once").
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Event names (stable: alert rules store them).
CONNECTION_UNHEALTHY = "connection.unhealthy"
OAUTH_REAUTHORIZATION_REQUIRED = "oauth.reauthorization_required"
WORKFLOW_RUN_FAILED = "workflow_run.failed"
# Not an alert of its own: every live problem about the connection resolves.
CONNECTION_DELETED = "connection.deleted"


@dataclass(frozen=True)
class Event:
    """``active`` True: the condition started (or is still there); False: it ended."""

    name: str
    subject: str  # what the condition is about, e.g. "connection:12"; one problem per (rule, subject)
    active: bool
    title: str = ""
    connection_id: int | None = None
    connection_type: str = ""
    details: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]
_listeners: dict[str, Listener] = {}


def subscribe(key: str, listener: Listener) -> None:
    _listeners[key] = listener


def emit(name: str, *, subject: str, active: bool, title: str = "", connection_id: int | None = None,
         connection_type: str = "", details: dict[str, Any] | None = None) -> None:
    event = Event(name=name, subject=subject, active=active, title=title, connection_id=connection_id,
                  connection_type=connection_type, details=dict(details or {}))
    for listener in list(_listeners.values()):
        listener(event)

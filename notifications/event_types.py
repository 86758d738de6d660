"""The events a rule can pick, their thresholds and how each is detected.

Two kinds: *transitions* are emitted by the code that writes the state change
(`synthorg.events.emit`, inside its transaction); *conditions* are evaluated by the
periodic ``notifications.problems_evaluate`` task (thresholds, expiry dates, backlogs),
which opens a problem while the condition holds and resolves it when it stops.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synthorg import events


@dataclass(frozen=True)
class EventType:
    name: str
    label: str
    evaluated: bool  # True: found by the periodic evaluation; False: emitted at the transition
    # Rule params this event reads, with their defaults.
    params: dict[str, Any] = field(default_factory=dict)
    # A condition must hold this long (a rule param, minutes) before the problem opens.
    duration_param: str | None = None


EVENT_TYPES: dict[str, EventType] = {e.name: e for e in (
    EventType(events.CONNECTION_UNHEALTHY, "Connection became unhealthy / recovered", evaluated=False),
    EventType(events.OAUTH_REAUTHORIZATION_REQUIRED, "OAuth token needs re-authorisation / reconnected",
              evaluated=False),
    EventType("oauth.refresh_failing", "OAuth token refresh failing transiently for longer than N minutes",
              evaluated=True, params={"refresh_failing_minutes": 15}, duration_param="refresh_failing_minutes"),
    EventType("webhooks.rejections", "Webhook rejections of a connection over a threshold per 5 minutes",
              evaluated=True, params={"rejections_per_5_minutes": 20}),
    EventType(events.WORKFLOW_RUN_FAILED, "Workflow runs failing (resolved by the workflow's next success)",
              evaluated=False),
    EventType("credential.expiring", "A connection's credential expires within N days (Connection.expires_at)",
              evaluated=True, params={"expiry_days": 14}),
    EventType("outbox.backlog", "Webhook deliveries waiting for publication longer than N minutes",
              evaluated=True, params={"backlog_minutes": 10}),
    EventType("secrets.unavailable", "A secret backend cannot be read", evaluated=True),
)}


def param(rule_params: dict[str, Any], event: str, name: str) -> Any:
    """A rule's threshold, or the event's default."""
    value = rule_params.get(name)
    return value if value is not None else EVENT_TYPES[event].params[name]

"""`log_event`: writes the event to the server log (the smallest useful workflow)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from webhooks.workflows import Event, Workflow

logger = logging.getLogger(__name__)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def validate(parameters: Mapping[str, Any]) -> None:
    unknown = set(parameters) - {"level", "message"}
    if unknown:
        raise ValueError(f"log_event parameters: unknown keys {', '.join(sorted(unknown))}")
    if parameters.get("level", "info") not in _LEVELS:
        raise ValueError(f"log_event parameters: level must be one of {', '.join(_LEVELS)}")
    if not isinstance(parameters.get("message", ""), str):
        raise ValueError("log_event parameters: message must be a string")


def run(event: Event, parameters: Mapping[str, Any]) -> dict[str, Any]:
    message = parameters.get("message") or "webhook event"
    logger.log(_LEVELS[parameters.get("level", "info")], "%s: %s/%s event %s (delivery %s)", message,
               event["connection_name"], event["event_type"], event["event_id"], event["delivery_id"])
    return {"logged": True, "event_id": event["event_id"]}


WORKFLOW = Workflow(name="log_event", run=run, validate=validate,
                    description="Log the event's connection, type and ids.")

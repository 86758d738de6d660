"""The webhook receiver in the OpenAPI schema.

The receiver is a plain Django view (it must read raw bytes itself, before DRF parses
anything), so drf-spectacular cannot see it; this postprocessing hook describes it.
"""
from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


RECEIVER_OPERATION: dict[str, Any] = {
    "operationId": "webhooks_receive",
    "summary": "Receive a webhook delivery",
    "description": (
        "Unauthenticated: the delivery authenticates itself with the connection's signature scheme "
        "(GitHub X-Hub-Signature-256, Slack X-Slack-Signature, generic HMAC, Standard Webhooks). "
        "One uniform 401 for an unknown connection, a missing secret or a bad signature. "
        "`event_type` = `auto` takes the provider's own event name."),
    "tags": ["webhooks"],
    "security": [],
    "parameters": [
        {"name": "connection_name", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}},
        {"name": "event_type", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,100}$"}},
    ],
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "additionalProperties": True}},
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": True}},
    }},
    "responses": {
        "200": _json({"type": "object", "additionalProperties": True},
                     "A duplicate of an accepted delivery (`status: duplicate`), or Slack's url_verification"),
        "202": _json({"type": "object", "properties": {"status": {"type": "string"},
                                                      "delivery_id": {"type": "integer"}},
                      "required": ["status", "delivery_id"]}, "Stored; published after the answer"),
        "400": _json(_ERROR, "The body is neither a JSON object (UTF-8, nested at most 256 levels) nor form-encoded"),
        "401": _json(_ERROR, "Not verified (the same body for every reason)"),
        "404": _json(_ERROR, "The path does not name a receiver (malformed segments)"),
        "405": {"description": "Only POST"},
        "413": _json(_ERROR, "Body larger than integrations.webhooks.max_payload_bytes"),
        "429": _json(_ERROR, "Per-IP flood guard or per-connection rate limit (see Retry-After)"),
        "503": _json(_ERROR, "integrations.enabled is false (an unreachable Redis is not a 503: per-process limits)"),
    },
}


def add_receiver(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("paths", {})["/api/v1/webhooks/{connection_name}/{event_type}"] = {
        "post": RECEIVER_OPERATION}
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", {"type": "object", "properties": {
        "detail": {"type": "string"}, "code": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": True}}, "required": ["detail", "code"]})
    return result

"""Outbound webhook through a ``generic_http`` connection, signed with Standard Webhooks.

The body goes to the connection's own ``base_url`` (the destination its operator set; no
sink setting can change where it goes) with the connection's auth header, and is signed
with the sink's ``whsec_`` secret: ``webhook-id`` is the alert id, so a receiver that sees
the same id twice (a resend after a lost answer) can drop the copy.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from integrations.types.generic_http import auth_headers
from synthorg.http import http_request
from webhooks.verifiers.standard import generate_standard_secret, sign_standard_webhooks


def generate_secret() -> dict[str, str]:
    return {"signing_secret": generate_standard_secret(32)}


def validate(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, list[str]]:
    if settings:
        return {"settings": ["this kind has no settings: it posts to the connection's base_url"]}
    return {}


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def send(*, sink: Any, message: Any, values: Mapping[str, Any], thread_root: str | None,
         timeout: float, clock: Any = time.time) -> int | None:
    body = body_bytes(message.payload)
    headers = {"Content-Type": "application/json", "User-Agent": "synthorg-alerts/1",
               **auth_headers(values),
               **sign_standard_webhooks(values["signing_secret"], body, message_id=message.alert_id,
                                        timestamp=int(clock()))}
    response = http_request("POST", str(values["base_url"]), timeout=(min(5.0, timeout), timeout),
                            headers=headers, data=body, max_bytes=64 * 1024, connection_id=sink.connection_id,
                            require_tls=True)
    return response.status_code

"""Shared builders for the receiver tests: connections and signed requests."""
from __future__ import annotations

import json
import time
from typing import Any

from django.test import Client

from integrations import services
from integrations.models import Connection
from webhooks.verifiers import sign_github, sign_slack

GITHUB_SECRET = "It's a Secret to Everybody"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def make_github(name: str = "gh", secret: str | None = GITHUB_SECRET) -> Connection:
    credentials: dict[str, Any] = {"token": "ghp_test_token_value"}
    if secret is not None:
        credentials["signing_secret"] = secret
    return services.connection_create(name=name, connection_type="github", credentials=credentials)


def make_slack(name: str = "sl", secret: str = SLACK_SECRET) -> Connection:
    return services.connection_create(name=name, connection_type="slack",
                                      credentials={"token": "xoxb-test-token", "signing_secret": secret})


def make_generic(name: str = "gen", **config: Any) -> Connection:
    credentials = {"base_url": "http://127.0.0.1:9/", "signing_secret": "generic-secret-0123456789", **config}
    return services.connection_create(name=name, connection_type="generic_http", credentials=credentials)


def github_body(n: int = 0, **extra: Any) -> bytes:
    return json.dumps({"zen": "Keep it logically awesome.", "n": n, **extra}).encode()


def github_headers(body: bytes, *, secret: str = GITHUB_SECRET, event: str = "push",
                   delivery: str = "d-1") -> dict[str, str]:
    return sign_github(secret.encode(), body, event=event, delivery=delivery)


def slack_headers(body: bytes, *, secret: str = SLACK_SECRET, timestamp: int | None = None) -> dict[str, str]:
    return sign_slack(secret.encode(), body, timestamp=int(time.time()) if timestamp is None else timestamp)


def meta(headers: dict[str, str]) -> dict[str, str]:
    """Headers as Django test-client keyword arguments."""
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}


def post(client: Client, connection: str, event_type: str, body: bytes, headers: dict[str, str],
         content_type: str = "application/json", **extra: Any) -> Any:
    return client.post(f"/api/v1/webhooks/{connection}/{event_type}", data=body, content_type=content_type,
                       **meta(headers), **extra)

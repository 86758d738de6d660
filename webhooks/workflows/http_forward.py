"""`http_forward`: POSTs the event as JSON to a `generic_http` connection.

Parameters: ``connection`` (name of a generic_http connection), ``path`` (appended to its
``base_url``, default ``/``). The connection's token or api key is sent as that connection
configures it, and its own rate limit applies (no waiting: the run retries later).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations import selectors, services
from integrations.models import Connection
from integrations.ratelimit import with_connection_rate_limit
from synthorg.http import http_request
from webhooks.workflows import Event, Workflow

TIMEOUT = (5.0, 15.0)


def validate(parameters: Mapping[str, Any]) -> None:
    unknown = set(parameters) - {"connection", "path"}
    if unknown:
        raise ValueError(f"http_forward parameters: unknown keys {', '.join(sorted(unknown))}")
    name = parameters.get("connection")
    if not isinstance(name, str) or not name:
        raise ValueError("http_forward parameters: connection (a generic_http connection name) is required")
    connection = selectors.connection_find(name)
    if connection is None or connection.connection_type != "generic_http":
        raise ValueError(f"http_forward parameters: {name!r} is not a generic_http connection")
    path = parameters.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/") or "://" in path:
        raise ValueError("http_forward parameters: path must start with /")


def _auth_headers(credentials: Mapping[str, Any]) -> dict[str, str]:
    header = credentials.get("auth_header") or "Authorization"
    if credentials.get("token"):
        scheme = credentials.get("auth_scheme") or ""
        return {header: f"{scheme} {credentials['token']}".strip()}
    if credentials.get("api_key"):
        return {header: str(credentials["api_key"])}
    return {}


@with_connection_rate_limit("connection", wait=False)
def forward(*, connection: Connection, path: str, event: Event) -> int:
    credentials = services.connection_credentials(connection)
    url = str(credentials["base_url"]).rstrip("/") + path
    response = http_request("POST", url, timeout=TIMEOUT, json=dict(event),
                            headers={**_auth_headers(credentials), "X-Synthorg-Event-Id": str(event["event_id"])},
                            connection_id=connection.pk, require_tls=True)
    return response.status_code


def run(event: Event, parameters: Mapping[str, Any]) -> dict[str, Any]:
    connection = selectors.connection_get(parameters["connection"])
    status = forward(connection=connection, path=parameters.get("path", "/"), event=event)
    return {"status": status, "connection": connection.name}


WORKFLOW = Workflow(name="http_forward", run=run, validate=validate,
                    description="POST the event as JSON to a generic_http connection.")

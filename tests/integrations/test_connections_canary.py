"""A canary secret appears nowhere but the reveal: API bodies, schema, DEBUG logs, audit events, the database."""
from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.db import connection as db_connection
from rest_framework.test import APIClient

from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections"
CANARY = "CANARY-d41d8cd98f00b204"


def test_canary_never_leaks_outside_the_reveal(
    operator_client: APIClient, operator_user: Any, caplog: pytest.LogCaptureFixture, integrations_config: Any,
) -> None:
    integrations_config({"connections": {"reveal_rate_per_minute": 0}})
    caplog.set_level(logging.DEBUG)
    bodies: list[bytes] = []

    def call(method: str, path: str, payload: Any = None) -> Any:
        response = getattr(operator_client, method)(path, payload, format="json")
        bodies.append(response.content + json.dumps(dict(response.items())).encode())
        return response

    assert call("post", URL, {"name": "gh", "connection_type": "github",
                              "credentials": {"token": CANARY, "signing_secret": CANARY + "-sig"}}).status_code == 201
    assert call("post", URL, {"name": "gh", "connection_type": "github",
                              "credentials": {"token": CANARY}}).status_code == 409
    assert call("post", URL, {"name": "bad", "connection_type": "github",
                              "credentials": {"token": CANARY, "api_url": "ftp://x"}}).status_code == 422
    assert call("post", URL, {"name": "types", "connection_type": "smtp",
                              "credentials": {"host": "mx", "username": "u", "password": CANARY}}).status_code == 422
    assert call("post", URL, {"name": 5, "connection_type": "github",
                              "credentials": {"token": CANARY}}).status_code == 400
    call("get", URL)
    call("get", f"{URL}/gh")
    assert call("patch", f"{URL}/gh", {"credentials": {"token": CANARY + "-2"}}).status_code == 200
    assert call("patch", f"{URL}/gh", {"credentials": {"token": None}}).status_code == 422
    assert call("patch", f"{URL}/gh", {"credentials": {"api_url": CANARY}}).status_code == 422
    call("get", f"{URL}/gh/secrets/token")  # staff without the permission: 404
    call("get", "/api/schema/")
    call("get", "/api/v1/audit-events")

    for body in bodies:
        assert CANARY.encode() not in body

    operator_user.user_permissions.add(Permission.objects.get(codename="reveal_secret"))
    reveal = operator_client.get(f"{URL}/gh/secrets/token")
    assert reveal.json()["value"] == CANARY + "-2"  # the one place it may appear

    assert CANARY not in caplog.text
    assert all(CANARY not in str(record.args) for record in caplog.records)
    for event in AuditEvent.objects.all():
        assert CANARY not in json.dumps(event.details) + event.reason + str(event)

    with db_connection.cursor() as cursor:
        for model in apps.get_app_config("integrations").get_models():
            cursor.execute(f"SELECT * FROM {db_connection.ops.quote_name(model._meta.db_table)}")  # noqa: S608
            assert CANARY not in json.dumps(cursor.fetchall(), default=str), model.__name__
        cursor.execute(f"SELECT * FROM {db_connection.ops.quote_name(AuditEvent._meta.db_table)}")  # noqa: S608
        assert CANARY not in json.dumps(cursor.fetchall(), default=str)

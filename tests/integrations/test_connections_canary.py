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


# --- issue 12: with change_connection only, no request sequence sends the canary anywhere -------

# The catalog entry that launches an MCP server with each type's secrets (MCP verify).
MCP_ENTRIES = {"github": "github", "slack": "slack", "database": "postgres", "generic_http": "brave-search"}


def _changer_sequences(client: APIClient, type_name: str, ls: Any, case: Any,
                       operator_checks: Any) -> list[Any]:
    """Every request the changer can think of, in order; each answer is kept for the body check.
    ``operator_checks`` runs what an operator would then do (forced checks, grants)."""
    from integrations.types import get_type

    ctype = get_type(type_name)
    name = f"{URL}/target"
    moves = [move(ls) for move in case.moves.values()]
    combined = {k: v for move in moves for k, v in move.items()}
    secrets = list(ctype.secret_field_names)
    responses = []
    for patch in [*moves, combined] if moves else [{}]:
        responses.append(client.patch(name, {"credentials": patch}, format="json"))
        responses.append(client.get(f"{name}/health", {"force": "true"}))
        responses.append(client.get(f"{name}/health"))
        if type_name == "oauth_app":
            for grant in ("authorization_code", "client_credentials", "device_code"):
                responses.append(client.post("/api/v1/oauth/initiate",
                                             {"connection_name": "target", "grant_type": grant}, format="json"))
        if type_name in MCP_ENTRIES:
            responses.append(client.post(f"/api/v1/integrations/mcp/catalog/install/{MCP_ENTRIES[type_name]}/verify"))
    # Fields that are no destination may change, and the health check may then run.
    responses.append(client.patch(name, {"metadata": {"by": "changer"}, "rate_limit": {"burst": 3}}, format="json"))
    responses.append(client.get(f"{name}/health", {"force": "true"}))
    responses.append(client.get(f"{name}/secrets/{secrets[0]}"))
    operator_checks()
    # Some secrets but not all: still refused (had it passed, the canary token would be replaced
    # by now, so this comes after the checks above).
    if len(secrets) > 1:
        for patch in moves:
            responses.append(client.patch(name, {"credentials": {**patch, secrets[0]: "attacker"}}, format="json"))
        operator_checks()
    # Last: the changer gives secrets of their own with the move. That is allowed, and the
    # canary is gone from the connection before anything is sent to the new destination.
    responses.append(client.patch(name, {"credentials": {**combined, **dict.fromkeys(secrets, "attacker-own")}},
                                  format="json"))
    responses.append(client.get(f"{name}/health", {"force": "true"}))
    return responses


@pytest.mark.parametrize("type_name", ["database", "generic_http", "github", "oauth_app", "slack", "smtp"])
def test_change_permission_alone_never_sends_the_canary_to_a_listener(
    type_name: str, django_user_model: Any, integrations_config: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from catalog import services as catalog_services
    from catalog.verify import VerifyResult
    from integrations import services
    from integrations.types import slack
    from tests.integrations.test_destination_rule import CANARY as RULE_CANARY
    from tests.integrations.test_destination_rule import CASES, call_out, changer, listeners

    integrations_config({"health": {"github_allowed_hosts": ["127.0.0.1", "127.0.0.2"]}})
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    # MCP verify would launch a real server: only what it would be launched with matters here.
    launched: list[Any] = []
    monkeypatch.setattr(catalog_services, "verify_server",
                        lambda server, **kw: launched.append(server) or VerifyResult(ok=False, error="stub"))
    client = APIClient()
    client.force_authenticate(changer(django_user_model))
    case = CASES[type_name]
    for ls in listeners(case.protocol):
        # Slack's token only ever goes to slack.com: the owner's "home" stands in for it.
        monkeypatch.setattr(slack, "AUTH_TEST_URL", f"{ls.home.url}/api/auth.test")
        services.connection_create(name="target", connection_type=type_name, credentials=case.credentials(ls),
                                   actor="owner")
        if type_name in MCP_ENTRIES:
            catalog_services.installation_install(entry_id=MCP_ENTRIES[type_name], connection_name="target",
                                                  options={"team_id": "T0123"} if type_name == "slack" else {},
                                                  actor="owner")
        responses = _changer_sequences(client, type_name, ls, case, lambda: call_out("target", type_name))

        for response in responses:
            assert response.status_code in {200, 202, 403, 404, 409, 422}, (response.status_code, response.content)
            assert RULE_CANARY not in response.content.decode()
        for trap in ls.traps:
            assert not trap.leaked(RULE_CANARY), f"{type_name}: the canary reached {trap.host}:{trap.port}"
        for server in launched:
            assert ls.host_trap.host not in " ".join([*server.args, *server.env.values()])
        for event in AuditEvent.objects.all():
            assert RULE_CANARY not in json.dumps(event.details) + event.reason
        assert AuditEvent.objects.filter(action="connection.update", reason="secrets_required").exists() or not (
            case.moves)

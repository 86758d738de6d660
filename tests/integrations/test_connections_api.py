"""The connections API: create/list/get/delete, the 400/422/409 rule, names, permissions, query counts."""
from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations import dependants
from integrations.models import Connection, SecretRecord
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections"
TOKEN = "ghp_canary_0123456789abcdef"


def github(name: str = "gh", **credentials: Any) -> dict[str, Any]:
    return {"name": name, "connection_type": "github", "credentials": {"token": TOKEN, **credentials}}


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


# --- create ------------------------------------------------------------------------------------

def test_valid_create_returns_201_with_config_and_secret_names_only(operator_client: APIClient) -> None:
    response = operator_client.post(URL, github(signing_secret="whs-canary-1"), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "gh" and body["connection_type"] == "github"
    assert body["config"] == {"api_url": "https://api.github.com"}
    assert body["secret_fields"] == ["signing_secret", "token"]
    assert body["secret_backend"] == "encrypted_sqlite"
    assert body["rate_limit"] == {"requests_per_minute": 0, "burst": 0, "max_concurrent": 0}
    assert body["health_check"] == {"enabled": True, "interval_seconds": None}
    assert TOKEN not in response.content.decode() and "whs-canary-1" not in response.content.decode()
    event = AuditEvent.objects.get(action="connection.create")
    assert event.target == "gh" and event.actor_name == "operator"
    assert TOKEN not in json.dumps(event.details)


def test_create_with_rate_limit_health_check_and_metadata_stores_them(operator_client: APIClient) -> None:
    payload = {**github(), "rate_limit": {"requests_per_minute": 60, "burst": 5, "max_concurrent": 2},
               "health_check": {"enabled": False, "interval_seconds": 120}, "metadata": {"team": "infra"}}
    body = operator_client.post(URL, payload, format="json").json()
    assert body["rate_limit"] == {"requests_per_minute": 60, "burst": 5, "max_concurrent": 2}
    assert body["health_check"] == {"enabled": False, "interval_seconds": 120}
    assert body["metadata"] == {"team": "infra"}
    connection = Connection.objects.get(name="gh")
    assert (connection.rate_limit_rpm, connection.rate_limit_burst, connection.rate_limit_max_concurrent) == (60, 5, 2)


@pytest.mark.parametrize("payload", [
    {"name": 5, "connection_type": "github", "credentials": {"token": TOKEN}},
    {"name": "gh", "connection_type": ["github"], "credentials": {"token": TOKEN}},
    {"name": "gh", "connection_type": "github", "credentials": "token=abc"},
    {"name": "gh", "connection_type": "github", "credentials": {"token": TOKEN}, "rate_limit": {"burst": "5"}},
    {"name": "gh", "connection_type": "github", "credentials": {"token": TOKEN}, "rate_limit": 5},
    {"name": "gh", "connection_type": "github", "credentials": {"token": TOKEN},
     "health_check": {"enabled": "yes"}},
    {"name": "gh", "connection_type": "github", "credentials": {"token": TOKEN}, "metadata": ["x"]},
    {"connection_type": "github", "credentials": {"token": TOKEN}},
])
def test_malformed_create_is_400_and_writes_nothing(operator_client: APIClient, payload: dict[str, Any]) -> None:
    response = operator_client.post(URL, payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert not Connection.objects.exists() and not SecretRecord.objects.exists()


def test_non_json_body_is_400(operator_client: APIClient) -> None:
    response = operator_client.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize(("payload", "field", "rule"), [
    (github(name="-starts-with-dash"), "name", "starting with a letter or digit"),
    (github(name="a" * 129), "name", "1-128 characters"),
    (github(name="has space"), "name", "1-128 characters"),
    (github(name="types"), "name", "reserved"),
    (github(name="Types"), "name", "reserved"),
    ({"name": "x", "connection_type": "ftp", "credentials": {}}, "connection_type", "must be one of"),
    ({"name": "x", "connection_type": "github", "credentials": {}}, "credentials.token", "is required"),
    (github(api_url="ftp://example.com"), "credentials.api_url", "http:// or https://"),
    (github(colour="blue"), "credentials.colour", "is not a field of the github type"),
    ({**github(), "rate_limit": {"requests_per_minute": -1}}, "rate_limit.requests_per_minute", "between 0"),
    ({**github(), "health_check": {"interval_seconds": 1}}, "health_check.interval_seconds", "between 10"),
])
def test_rule_breaking_create_is_422_naming_field_and_rule(
    operator_client: APIClient, payload: dict[str, Any], field: str, rule: str,
) -> None:
    response = operator_client.post(URL, payload, format="json")
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "validation_failed"
    assert any(rule in message for message in body["errors"][field]), body
    assert not Connection.objects.exists() and not SecretRecord.objects.exists()
    assert not AuditEvent.objects.filter(action="connection.create").exists()


def test_name_of_128_characters_is_accepted(operator_client: APIClient) -> None:
    assert operator_client.post(URL, github(name="a" * 128), format="json").status_code == 201


def test_duplicate_name_in_another_case_is_409(operator_client: APIClient) -> None:
    assert operator_client.post(URL, github(name="Prod.GH"), format="json").status_code == 201
    response = operator_client.post(URL, github(name="prod.gh"), format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "connection_name_taken"
    assert Connection.objects.count() == 1 and SecretRecord.objects.count() == 1


def test_get_is_case_insensitive_and_unknown_name_is_404(operator_client: APIClient) -> None:
    operator_client.post(URL, github(name="Prod.GH"), format="json")
    assert operator_client.get(f"{URL}/prod.gh").json()["name"] == "Prod.GH"
    response = operator_client.get(f"{URL}/nope")
    assert response.status_code == 404 and response.json()["code"] == "connection_not_found"


# --- list --------------------------------------------------------------------------------------

def test_list_is_paginated_and_filters_by_type(operator_client: APIClient) -> None:
    for i in range(3):
        operator_client.post(URL, github(name=f"gh{i}"), format="json")
    operator_client.post(URL, {"name": "sl", "connection_type": "slack", "credentials": {"token": "xoxb-1"}},
                      format="json")
    body = operator_client.get(URL, {"limit": 2}).json()
    assert body["count"] == 4 and len(body["results"]) == 2 and body["next"]
    slack = operator_client.get(URL, {"connection_type": "slack"}).json()
    assert [c["name"] for c in slack["results"]] == ["sl"]


def _make_connections(n: int) -> None:
    Connection.objects.bulk_create(
        Connection(name=f"c{i:04d}", connection_type="github", config={"api_url": "https://api.github.com"},
                   secret_backend="encrypted_sqlite", secret_fields=["token"])
        for i in range(n)
    )


@pytest.mark.parametrize("n", [5, 500])
def test_listing_n_connections_costs_constant_queries(
    operator_client: APIClient, django_assert_num_queries: Any, n: int,
) -> None:
    _make_connections(n)
    operator_client.get(URL)  # warm caches (content types, permissions) outside the count
    # Token auth (1), the user's and their groups' permissions (2), count (1), page (1): the same
    # for 5 and for 500 rows.
    with django_assert_num_queries(5):
        body = operator_client.get(URL, {"limit": 500}).json()
    assert len(body["results"]) == n


# --- permissions -------------------------------------------------------------------------------

def test_anonymous_is_refused(api_client: APIClient) -> None:
    assert api_client.get(URL).status_code in (401, 403)
    assert api_client.post(URL, github(), format="json").status_code in (401, 403)


def test_plain_user_reads_but_cannot_write(operator_client: APIClient, user_client: APIClient) -> None:
    operator_client.post(URL, github(), format="json")
    assert user_client.get(URL).status_code == 200
    assert user_client.post(URL, github(name="other"), format="json").status_code == 403
    assert user_client.patch(f"{URL}/gh", {"metadata": {"a": "b"}}, format="json").status_code == 403
    assert user_client.delete(f"{URL}/gh").status_code == 403
    assert Connection.objects.count() == 1


def test_model_permissions_allow_writes_without_staff(user: Any) -> None:
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="integrations",
        codename__in=["add_connection", "change_connection", "delete_connection"]))
    client = client_for(user)
    assert client.post(URL, github(), format="json").status_code == 201
    assert client.patch(f"{URL}/gh", {"metadata": {"a": "b"}}, format="json").status_code == 200
    assert client.delete(f"{URL}/gh").status_code == 204


# --- types -------------------------------------------------------------------------------------

def test_types_endpoint_lists_every_type_with_field_descriptions(user_client: APIClient) -> None:
    body = user_client.get(f"{URL}/types").json()
    types = {t["name"]: t for t in body}
    assert set(types) == {"github", "slack", "smtp", "database", "generic_http", "oauth_app"}
    fields = {f["name"]: f for f in types["github"]["fields"]}
    assert fields["token"] == {**fields["token"], "required": True, "secret": True}
    assert fields["api_url"]["default"] == "https://api.github.com" and fields["api_url"]["secret"] is False
    dialect = {f["name"]: f for f in types["database"]["fields"]}["dialect"]
    assert dialect["choices"] == ["postgres", "mysql", "mariadb", "sqlite"]
    assert {f["name"]: f for f in types["smtp"]["fields"]}["port"]["default"] == 587


# --- delete ------------------------------------------------------------------------------------

def test_delete_removes_connection_and_secret_records(operator_client: APIClient) -> None:
    operator_client.post(URL, github(), format="json")
    assert SecretRecord.objects.count() == 1
    response = operator_client.delete(f"{URL}/GH")
    assert response.status_code == 204
    assert not Connection.objects.exists() and not SecretRecord.objects.exists()
    event = AuditEvent.objects.get(action="connection.delete")
    assert event.target == "gh" and event.details["secret_records"] == 1


def test_delete_unknown_is_404(operator_client: APIClient) -> None:
    assert operator_client.delete(f"{URL}/missing").status_code == 404


class _FakeInstallations:
    """A dependant app as one registers itself: names per connection, a remover."""

    def __init__(self) -> None:
        self.names: dict[int, list[str]] = {}
        self.removed: list[tuple[str, str]] = []

    def list_names(self, connection: Connection) -> list[str]:
        return self.names.get(connection.pk, [])

    def remove(self, connection: Connection, *, actor: Any = None, request: Any = None) -> None:
        self.removed.append((connection.name, actor.get_username()))
        self.names.pop(connection.pk, None)


@pytest.fixture
def installations(monkeypatch: pytest.MonkeyPatch) -> _FakeInstallations:
    fake = _FakeInstallations()
    monkeypatch.setitem(dependants._registry, "test-installations",
                        dependants.Dependant("MCP installations", fake.list_names, fake.remove))
    return fake


def test_delete_with_dependants_is_409_naming_them(operator_client: APIClient, installations: _FakeInstallations) -> None:
    operator_client.post(URL, github(), format="json")
    installations.names[Connection.objects.get().pk] = ["github-mcp", "github-mcp-2"]
    response = operator_client.delete(f"{URL}/gh")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "connection_has_dependants"
    assert "MCP installations: github-mcp, github-mcp-2" in body["detail"] and "force=true" in body["detail"]
    assert Connection.objects.count() == 1 and SecretRecord.objects.count() == 1 and not installations.removed


def test_forced_delete_removes_dependants_through_their_hook(
    operator_client: APIClient, installations: _FakeInstallations,
) -> None:
    operator_client.post(URL, github(), format="json")
    installations.names[Connection.objects.get().pk] = ["github-mcp"]
    assert operator_client.delete(f"{URL}/gh?force=true").status_code == 204
    assert installations.removed == [("gh", "operator")]
    assert not Connection.objects.exists() and not SecretRecord.objects.exists()
    event = AuditEvent.objects.get(action="connection.delete")
    assert event.details["forced"] is True
    assert event.details["removed_dependants"] == {"MCP installations": ["github-mcp"]}


def test_delete_with_malformed_force_is_400(operator_client: APIClient) -> None:
    operator_client.post(URL, github(), format="json")
    assert operator_client.delete(f"{URL}/gh?force=perhaps").status_code == 400
    assert Connection.objects.count() == 1


# --- values PostgreSQL cannot store -------------------------------------------------------------

def test_nul_in_a_path_name_is_404(operator_client: APIClient) -> None:
    assert operator_client.get(f"{URL}/a%00b").status_code == 404
    assert operator_client.patch(f"{URL}/a%00b", {}, format="json").status_code == 404
    assert operator_client.delete(f"{URL}/a%00b").status_code == 404


def test_nul_in_metadata_is_400(operator_client: APIClient) -> None:
    # The API's one JSON step (synthorg.parsers) names the field's path.
    response = operator_client.post(URL, {**github(), "metadata": {"k": ["a\x00"]}}, format="json")
    assert response.status_code == 400 and "metadata.k.0" in response.json()["errors"]
    operator_client.post(URL, github(), format="json")
    assert operator_client.patch(f"{URL}/gh", {"metadata": {"\x00": "v"}}, format="json").status_code == 400


def test_nul_in_a_config_value_or_a_secret_is_400(operator_client: APIClient) -> None:
    response = operator_client.post(URL, github(api_url="https://ghe.example.com/\x00"), format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_character"
    assert response.json()["errors"]["credentials.api_url"] == ["must not contain NUL characters (\\u0000)"]
    # A NUL can go into no header, URL or connection string a secret is used in (issue 13: one
    # step for all JSON the API takes, secrets included).
    response = operator_client.post(URL, github(signing_secret="a\x00b"), format="json")
    assert response.status_code == 400 and "credentials.signing_secret" in response.json()["errors"]

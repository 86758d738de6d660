"""PATCH semantics: merge field by field, null removes, omitted unchanged, a new secret version, no-op writes nothing."""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection, SecretRecord
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections"


@pytest.fixture
def gh(operator_client: APIClient) -> Connection:
    response = operator_client.post(URL, {
        "name": "gh", "connection_type": "github",
        "credentials": {"token": "tok-1", "signing_secret": "sig-1"},
        "rate_limit": {"requests_per_minute": 60, "burst": 2, "max_concurrent": 3},
        "metadata": {"team": "infra"},
    }, format="json")
    assert response.status_code == 201, response.content
    return Connection.objects.get(name="gh")


def secrets_of(name: str) -> dict[str, str]:
    return services.connection_secrets(Connection.objects.get(name=name))


def record_of(connection: Connection) -> SecretRecord:
    return SecretRecord.objects.get(pk=Connection.objects.get(pk=connection.pk).secret_id)


def updates() -> int:
    return AuditEvent.objects.filter(action="connection.update").count()


def test_secret_field_merges_and_others_stay(operator_client: APIClient, gh: Connection) -> None:
    before = record_of(gh)
    response = operator_client.patch(f"{URL}/gh", {"credentials": {"signing_secret": "sig-2"}}, format="json")
    assert response.status_code == 200, response.content
    assert secrets_of("gh") == {"token": "tok-1", "signing_secret": "sig-2"}
    after = record_of(gh)
    assert after.pk == before.pk and after.version == before.version + 1
    assert after.ciphertext != before.ciphertext
    body = response.json()
    assert body["secret_fields"] == ["signing_secret", "token"] and "sig-2" not in response.content.decode()
    assert body["rate_limit"] == {"requests_per_minute": 60, "burst": 2, "max_concurrent": 3}
    assert body["metadata"] == {"team": "infra"}
    event = AuditEvent.objects.get(action="connection.update")
    assert event.details["changed"] == {"secret_fields": ["signing_secret"]}


def test_null_removes_a_field(operator_client: APIClient, gh: Connection) -> None:
    response = operator_client.patch(f"{URL}/gh", {"credentials": {"signing_secret": None}}, format="json")
    assert response.status_code == 200
    assert response.json()["secret_fields"] == ["token"]
    assert secrets_of("gh") == {"token": "tok-1"}
    assert record_of(gh).version == 2


def test_null_on_non_secret_field_restores_its_default(operator_client: APIClient, gh: Connection) -> None:
    # api_url is a destination: the secrets come again (the same values, so they are not re-stored).
    same = {"token": "tok-1", "signing_secret": "sig-1"}
    operator_client.patch(f"{URL}/gh", {"credentials": {"api_url": "https://ghe.example.com/api/v3", **same}},
                          format="json")
    assert Connection.objects.get(pk=gh.pk).config == {"api_url": "https://ghe.example.com/api/v3"}
    assert record_of(gh).version == 1  # config only: the secrets are not re-encrypted
    operator_client.patch(f"{URL}/gh", {"credentials": {"api_url": None, **same}}, format="json")
    assert Connection.objects.get(pk=gh.pk).config == {"api_url": "https://api.github.com"}


def test_removing_a_required_field_is_422_and_changes_nothing(operator_client: APIClient, gh: Connection) -> None:
    response = operator_client.patch(f"{URL}/gh", {"credentials": {"token": None, "signing_secret": "x"}},
                                  format="json")
    assert response.status_code == 422
    assert response.json()["errors"] == {"credentials.token": ["is required"]}
    assert secrets_of("gh") == {"token": "tok-1", "signing_secret": "sig-1"}
    assert record_of(gh).version == 1 and updates() == 0


def test_omitted_keys_are_unchanged(operator_client: APIClient, gh: Connection) -> None:
    response = operator_client.patch(f"{URL}/gh", {"rate_limit": {"burst": 9}}, format="json")
    assert response.json()["rate_limit"] == {"requests_per_minute": 60, "burst": 9, "max_concurrent": 3}
    assert secrets_of("gh") == {"token": "tok-1", "signing_secret": "sig-1"}
    assert record_of(gh).version == 1
    assert Connection.objects.get(pk=gh.pk).metadata == {"team": "infra"}


def test_health_check_and_metadata_update(operator_client: APIClient, gh: Connection) -> None:
    body = operator_client.patch(f"{URL}/gh", {"health_check": {"enabled": False, "interval_seconds": 600},
                                             "metadata": {"team": "payments"}}, format="json").json()
    assert body["health_check"] == {"enabled": False, "interval_seconds": 600}
    assert body["metadata"] == {"team": "payments"}
    body = operator_client.patch(f"{URL}/gh", {"health_check": {"interval_seconds": None}}, format="json").json()
    assert body["health_check"] == {"enabled": False, "interval_seconds": None}


@pytest.mark.parametrize("payload", [
    {},
    {"credentials": {}},
    {"credentials": {"token": "tok-1"}},
    {"credentials": {"api_url": "https://api.github.com"}},
    {"rate_limit": {"requests_per_minute": 60}},
    {"metadata": {"team": "infra"}},
    {"name": "gh", "connection_type": "github"},
])
def test_noop_writes_nothing(operator_client: APIClient, gh: Connection, payload: dict[str, Any]) -> None:
    before = Connection.objects.get(pk=gh.pk)
    record = record_of(gh)
    response = operator_client.patch(f"{URL}/gh", payload, format="json")
    assert response.status_code == 200, response.content
    after = Connection.objects.get(pk=gh.pk)
    assert after.updated_at == before.updated_at
    new_record = record_of(gh)
    assert (new_record.version, new_record.ciphertext) == (record.version, record.ciphertext)
    assert updates() == 0


@pytest.mark.parametrize(("payload", "field"), [
    ({"name": "renamed"}, "name"),
    ({"connection_type": "slack"}, "connection_type"),
])
def test_name_and_type_are_immutable(operator_client: APIClient, gh: Connection, payload: dict[str, Any],
                                     field: str) -> None:
    response = operator_client.patch(f"{URL}/gh", payload, format="json")
    assert response.status_code == 422
    assert "cannot change" in response.json()["errors"][field][0]
    assert Connection.objects.get(pk=gh.pk).name == "gh" and updates() == 0


@pytest.mark.parametrize("payload", [
    {"credentials": ["token"]},
    {"rate_limit": {"burst": "2"}},
    {"health_check": {"enabled": 1}},
    {"name": 5},
])
def test_malformed_patch_is_400(operator_client: APIClient, gh: Connection, payload: dict[str, Any]) -> None:
    assert operator_client.patch(f"{URL}/gh", payload, format="json").status_code == 400
    assert updates() == 0


def test_rule_breaking_patch_is_422(operator_client: APIClient, gh: Connection) -> None:
    response = operator_client.patch(f"{URL}/gh", {"credentials": {"api_url": "http://example.com"}}, format="json")
    assert response.status_code == 422
    assert "https://" in response.json()["errors"]["credentials.api_url"][0]
    response = operator_client.patch(f"{URL}/gh", {"rate_limit": {"burst": -3}}, format="json")
    assert response.status_code == 422 and "rate_limit.burst" in response.json()["errors"]


def test_patch_unknown_connection_is_404(operator_client: APIClient) -> None:
    assert operator_client.patch(f"{URL}/nope", {"metadata": {}}, format="json").status_code == 404


def test_patch_adds_first_secret_to_a_connection_without_any(operator_client: APIClient) -> None:
    operator_client.post(URL, {"name": "db", "connection_type": "database",
                            "credentials": {"dialect": "sqlite", "database": "/tmp/x.db"}}, format="json")
    assert operator_client.patch(f"{URL}/db", {"credentials": {"dialect": "postgres", "host": "db.internal",
                                                             "password": "pw"}},
                              format="json").status_code == 200
    assert secrets_of("db") == {"password": "pw"}


def test_every_real_update_is_audited_with_changed_fields(operator_client: APIClient, gh: Connection) -> None:
    operator_client.patch(f"{URL}/gh", {"credentials": {"token": "tok-2"}, "metadata": {"x": "y"}}, format="json")
    event = AuditEvent.objects.get(action="connection.update")
    assert event.details["changed"] == {"secret_fields": ["token"], "metadata": True}
    assert event.actor_name == "operator" and event.request_id
    assert "tok-2" not in str(event.details)

from __future__ import annotations

from typing import Any

import pytest

from providers import services
from providers.models import ProviderConfig
from synthorg.errors import Conflict, NotFound, ValidationFailed
from synthorg.models import AuditEvent
from tests.providers.conftest import CANARY

pytestmark = pytest.mark.django_db


def test_create_with_connection_stores_reference_and_audits(make_connection: Any, make_provider: Any) -> None:
    connection = make_connection()
    provider = make_provider(connection_name="LLM-Gateway")  # names match case-insensitively
    assert provider.connection_id == connection.pk
    assert provider.embedded_fields == [] and provider.embedded_ciphertext == ""
    event = AuditEvent.objects.get(action="provider.create", target="main-llm")
    assert event.details["connection_name"] == "llm-gateway"


def test_create_with_embedded_key_stores_only_ciphertext(make_provider: Any) -> None:
    provider = make_provider(api_key=CANARY)
    row = ProviderConfig.objects.filter(pk=provider.pk).values().get()
    assert CANARY not in repr(row)
    assert row["embedded_fields"] == ["api_key"]
    assert services.provider_embedded_credentials(provider) == {"api_key": CANARY}
    assert CANARY not in repr(AuditEvent.objects.get(action="provider.create").details)


@pytest.mark.parametrize(("kwargs", "field", "rule"), [
    ({"name": "-bad"}, "name", "must be 1-128 characters"),
    ({"name": "x" * 129}, "name", "must be 1-128 characters"),
    ({"name": "main\n"}, "name", "must be 1-128 characters"),
    ({"driver": "skynet"}, "driver", "must be one of openai"),
    ({"base_url": "ftp://llm.example.test"}, "base_url", "http:// or https://"),
    ({"base_url": "https://user:pw@llm.example.test"}, "base_url", "must not carry credentials"),
    ({"model": "m" * 257}, "model", "at most 256"),
    ({"api_key": ""}, "api_key", "must not be empty"),
    ({"oauth_client_id": "cid"}, "oauth_client_secret", "go together"),
    ({"oauth_client_id": "c", "oauth_client_secret": "s", "oauth_token_url": "http://idp.example.test/token"},
     "oauth_token_url", "must use https://"),
    ({"connection_name": "nope"}, "connection_name", "no connection named 'nope' exists"),
])
def test_create_breaking_a_rule_raises_422_naming_field(make_provider: Any, kwargs: dict[str, Any], field: str,
                                                        rule: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        make_provider(**kwargs)
    assert info.value.status_code == 422
    assert any(rule in message for message in info.value.errors[field])
    assert not ProviderConfig.objects.exists()
    assert not AuditEvent.objects.filter(action="provider.create").exists()


@pytest.mark.parametrize(("connection_type", "credentials"), [
    ("smtp", {"host": "mail.example.test"}),
    ("database", {"dialect": "sqlite", "database": "/tmp/x.db"}),
])
def test_create_referencing_credential_less_type_is_422(make_connection: Any, make_provider: Any,
                                                        connection_type: str, credentials: dict[str, Any]) -> None:
    make_connection(name="other", connection_type=connection_type, **credentials)
    with pytest.raises(ValidationFailed) as info:
        make_provider(connection_name="other")
    assert f"a {connection_type} connection carries no API credential" in info.value.errors["connection_name"][0]


def test_create_with_connection_and_embedded_key_is_422(make_connection: Any, make_provider: Any) -> None:
    make_connection()
    with pytest.raises(ValidationFailed) as info:
        make_provider(connection_name="llm-gateway", api_key=CANARY)
    assert "cannot be set together with connection_name" in info.value.errors["api_key"][0]
    assert CANARY not in str(info.value.detail) + repr(info.value.errors)


def test_create_duplicate_name_case_insensitively_is_409(make_provider: Any) -> None:
    make_provider(name="Main-LLM")
    with pytest.raises(Conflict) as info:
        make_provider(name="main-llm")
    assert info.value.status_code == 409 and info.value.code == "provider_name_taken"
    assert ProviderConfig.objects.count() == 1


def test_update_moves_embedded_key_to_connection_and_audits_names_only(make_connection: Any,
                                                                       make_provider: Any) -> None:
    make_connection()
    make_provider(api_key=CANARY)
    provider = services.provider_update(name="main-llm", data={"connection_name": "llm-gateway", "api_key": None})
    assert provider.connection.name == "llm-gateway"
    assert provider.embedded_fields == [] and provider.embedded_ciphertext == ""
    event = AuditEvent.objects.get(action="provider.update")
    assert event.details["changed"] == ["connection_name", "embedded_fields"]
    assert CANARY not in repr(event.details)


def test_update_setting_connection_while_embedded_key_kept_is_422(make_connection: Any, make_provider: Any) -> None:
    make_connection()
    make_provider(api_key=CANARY)
    with pytest.raises(ValidationFailed) as info:
        services.provider_update(name="main-llm", data={"connection_name": "llm-gateway"})
    assert "api_key" in info.value.errors
    assert ProviderConfig.objects.get().connection_id is None


def test_update_merges_embedded_fields(make_provider: Any) -> None:
    make_provider(api_key=CANARY)
    provider = services.provider_update(name="main-llm", data={
        "oauth_client_id": "cid", "oauth_client_secret": "csecret", "oauth_token_url": "https://idp.example.test/t"})
    assert provider.embedded_fields == ["api_key", "oauth_client_id", "oauth_client_secret", "oauth_token_url"]
    assert services.provider_embedded_credentials(provider)["api_key"] == CANARY


def test_update_no_op_writes_nothing(make_provider: Any) -> None:
    provider = make_provider(base_url="https://llm.example.test")
    before = provider.updated_at
    again = services.provider_update(name="main-llm", data={"driver": "openai", "model": "gpt-4o",
                                                            "base_url": "https://llm.example.test"})
    assert again.updated_at == before
    assert not AuditEvent.objects.filter(action="provider.update").exists()


def test_update_rename_is_422(make_provider: Any) -> None:
    make_provider()
    with pytest.raises(ValidationFailed) as info:
        services.provider_update(name="main-llm", data={"name": "renamed"})
    assert "cannot change" in info.value.errors["name"][0]


def test_update_null_connection_detaches(make_connection: Any, make_provider: Any) -> None:
    make_connection()
    make_provider(connection_name="llm-gateway")
    provider = services.provider_update(name="main-llm", data={"connection_name": None})
    assert provider.connection_id is None


def test_update_unknown_provider_is_404() -> None:
    with pytest.raises(NotFound):
        services.provider_update(name="ghost", data={"model": "x"})


def test_delete_removes_row_and_audits(make_provider: Any) -> None:
    make_provider()
    services.provider_delete(name="MAIN-llm")
    assert not ProviderConfig.objects.exists()
    assert AuditEvent.objects.filter(action="provider.delete", target="main-llm").exists()

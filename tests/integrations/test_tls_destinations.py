"""Issue 12 §2: a secret never travels in clear text to a host that is not loopback.

Every URL field a secret is sent to is https, plain http only to a loopback host; a row stored
before that rule is refused again where the request leaves (``synthorg.http``'s ``require_tls``),
before any name is resolved or socket opened.
"""
from __future__ import annotations

import socket
from typing import Any

import pytest
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection
from synthorg.errors import ValidationFailed
from synthorg.http import URLRefused, http_request
from tests.peers.http_peer import HttpPeer

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections"


@pytest.fixture
def peer() -> Any:
    with HttpPeer() as server:
        yield server


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records (and refuses) every name lookup and connect: the refusal must come first."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("the test forbids network access here")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_create_with_plain_http_to_a_network_host_is_422(operator_client: APIClient) -> None:
    response = operator_client.post(URL, {"name": "svc", "connection_type": "generic_http",
                                          "credentials": {"base_url": "http://internal:8080", "token": "tok-1"}},
                                    format="json")
    assert response.status_code == 422, response.content
    assert "must use https://" in str(response.json()["errors"]["credentials.base_url"])
    assert not Connection.objects.exists()


def test_patch_to_plain_http_to_a_network_host_is_422(operator_client: APIClient) -> None:
    services.connection_create(name="svc", connection_type="generic_http",
                               credentials={"base_url": "https://api.example.com", "token": "tok-1"})
    response = operator_client.patch(f"{URL}/svc", {"credentials": {"base_url": "http://internal:8080",
                                                                     "token": "tok-1"}}, format="json")
    assert response.status_code == 422, response.content
    assert "must use https://" in str(response.json()["errors"]["credentials.base_url"])
    assert Connection.objects.get(name="svc").config["base_url"] == "https://api.example.com"


def test_plain_http_to_loopback_is_accepted_and_probed(operator_client: APIClient, peer: HttpPeer) -> None:
    response = operator_client.post(URL, {"name": "svc", "connection_type": "generic_http",
                                          "credentials": {"base_url": peer.url("/status/200"), "token": "tok-1"}},
                                    format="json")
    assert response.status_code == 201, response.content
    assert peer.url("/").startswith("http://127.0.0.1:")
    body = operator_client.get(f"{URL}/svc/health?force=true").json()
    assert body["result"]["status"] == "healthy"
    assert peer.received[0].headers["Authorization"] == "Bearer tok-1"


def test_a_row_stored_before_the_rule_is_not_contacted(operator_client: APIClient, no_network: list[Any]) -> None:
    connection = services.connection_create(name="svc", connection_type="generic_http",
                                            credentials={"base_url": "https://internal:8080", "token": "tok-1"})
    # As an older release stored it: plain http to a network host.
    Connection.objects.filter(pk=connection.pk).update(config={**connection.config,
                                                               "base_url": "http://internal:8080"})
    body = operator_client.get(f"{URL}/svc/health?force=true").json()
    assert body["result"]["status"] == "unhealthy"
    assert "https" in body["result"]["detail"] and "tok-1" not in str(body)
    assert no_network == []  # refused before any name lookup or connection attempt


def test_require_tls_refuses_before_any_lookup(no_network: list[Any]) -> None:
    with pytest.raises(URLRefused, match="https"):
        http_request("GET", "http://internal:8080/x", timeout=(1.0, 1.0), require_tls=True,
                     headers={"Authorization": "Bearer tok-1"})
    assert no_network == []


def test_provider_base_url_is_https_unless_loopback(operator_client: APIClient) -> None:
    from providers import services as provider_services
    from synthorg.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as caught:
        provider_services.provider_create(name="p", driver="openai", base_url="http://llm.internal:8000/v1",
                                          api_key="sk-1")
    assert "must use https://" in str(caught.value.errors["base_url"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_provider_stored_with_plain_http_resolves_no_key() -> None:
    from providers import services as provider_services
    from providers.models import ProviderConfig

    provider = provider_services.provider_create(name="p", driver="openai", base_url="https://llm.internal/v1",
                                                 api_key="sk-1")
    assert provider_services.resolve_credentials(provider).value == "sk-1"
    ProviderConfig.objects.filter(pk=provider.pk).update(base_url="http://llm.internal/v1")
    provider.refresh_from_db()
    with pytest.raises(provider_services.ProviderCredentialsUnavailable) as caught:
        provider_services.resolve_credentials(provider)
    assert caught.value.code == "provider_destination_insecure" and "sk-1" not in str(caught.value)


def _url_fields() -> list[tuple[str, str]]:
    from integrations.types import REGISTRY

    return [(name, spec.name) for name, ctype in sorted(REGISTRY.items()) for spec in ctype.fields
            if spec.kind == "url"]


@pytest.mark.parametrize(("connection_type", "field"), _url_fields())
def test_every_url_field_of_every_type_is_https_unless_loopback(connection_type: str, field: str) -> None:
    # Generated from the registry: a new type's URL field cannot forget the rule.
    from integrations.types import get_type
    from tests.integrations.test_types_validation import VALID

    spec = get_type(connection_type).field_map[field]
    for validator in spec.validators:
        validator("http://127.0.0.1:8080/x")  # loopback: accepted
    with pytest.raises(ValidationFailed) as caught:
        services.connection_create(name="c", connection_type=connection_type,
                                   credentials={**VALID[connection_type], field: "http://internal.example:8080/x"})
    assert any("must use https://" in rule for rule in caught.value.errors[f"credentials.{field}"])
    assert not Connection.objects.exists()

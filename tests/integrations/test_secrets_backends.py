"""The env_var passthrough (naming rule, reads, 409 on writes) and the secret-manager stubs."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection, SecretRecord, SecretRef
from integrations.secrets import get_backend
from integrations.secrets.base import SecretBackendReadOnly, SecretBackendUnavailable
from integrations.secrets.env_var import variable_name

URL = "/api/v1/connections"
STUBS = ["secret_manager_cloud_b"]  # vault and cloud_a are real backends (tests/secret_backends)


@pytest.mark.parametrize(("connection", "field", "expected"), [
    ("gh", "token", "SYNTHORG_SECRET_GH_TOKEN"),
    ("gh-prod.eu", "token", "SYNTHORG_SECRET_GH_PROD_EU_TOKEN"),
    ("Slack_Main", "signing_secret", "SYNTHORG_SECRET_SLACK_MAIN_SIGNING_SECRET"),
    ("9lives", "client_secret", "SYNTHORG_SECRET_9LIVES_CLIENT_SECRET"),
])
def test_env_var_naming_rule(connection: str, field: str, expected: str) -> None:
    assert variable_name(connection, field) == expected


@pytest.fixture
def env_backend(integrations_config: Any, operator_user: Any) -> None:
    integrations_config({"secret_backend": {"backend_type": "env_var"},
                         "connections": {"reveal_rate_per_minute": 0}})
    # Creating an env_var connection whose variables are set binds them to its destination,
    # which needs the reveal permission (issue 12; tests/integrations/test_env_var_binding.py).
    operator_user.user_permissions.add(Permission.objects.get(codename="reveal_secret"))


@pytest.mark.django_db
def test_env_var_create_reads_secrets_from_the_environment(
    env_backend: None, monkeypatch: pytest.MonkeyPatch, operator_client: APIClient,
) -> None:
    monkeypatch.setenv("SYNTHORG_SECRET_GH_PROD_TOKEN", "env-token")
    response = operator_client.post(URL, {"name": "gh-prod", "connection_type": "github",
                                       "credentials": {"api_url": "https://ghe.example.com/api/v3"}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret_backend"] == "env_var" and body["secret_fields"] == ["token"]
    assert "env-token" not in response.content.decode()
    connection = Connection.objects.get(name="gh-prod")
    assert connection.secret_id is None and not SecretRecord.objects.exists()
    assert services.connection_credentials(connection) == {"api_url": "https://ghe.example.com/api/v3",
                                                           "token": "env-token"}
    monkeypatch.setenv("SYNTHORG_SECRET_GH_PROD_TOKEN", "rotated-by-operator")
    assert services.connection_secrets(connection) == {"token": "rotated-by-operator"}


@pytest.mark.django_db
def test_env_var_create_without_the_variable_is_422_naming_it(env_backend: None, operator_client: APIClient) -> None:
    response = operator_client.post(URL, {"name": "gh", "connection_type": "github", "credentials": {}},
                                 format="json")
    assert response.status_code == 422
    assert response.json()["errors"] == {
        "credentials.token": ["is required: set SYNTHORG_SECRET_GH_TOKEN in the service's environment"]}
    assert not Connection.objects.exists()


@pytest.mark.django_db
def test_env_var_write_of_a_secret_is_409_naming_the_variable(
    env_backend: None, monkeypatch: pytest.MonkeyPatch, operator_client: APIClient,
) -> None:
    response = operator_client.post(URL, {"name": "gh", "connection_type": "github",
                                       "credentials": {"token": "in-the-body"}}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "secret_backend_read_only" and "SYNTHORG_SECRET_GH_TOKEN" in body["detail"]
    assert "in-the-body" not in response.content.decode() and not Connection.objects.exists()

    monkeypatch.setenv("SYNTHORG_SECRET_GH_TOKEN", "env-token")
    assert operator_client.post(URL, {"name": "gh", "connection_type": "github", "credentials": {}},
                             format="json").status_code == 201
    response = operator_client.patch(f"{URL}/gh", {"credentials": {"signing_secret": "s"}}, format="json")
    assert response.status_code == 409 and "SYNTHORG_SECRET_GH_SIGNING_SECRET" in response.json()["detail"]
    # api_url decides where the environment's token goes: a request cannot move it (issue 12).
    response = operator_client.patch(f"{URL}/gh", {"credentials": {"api_url": "https://ghe.example.com"}},
                                  format="json")
    assert response.status_code == 409 and response.json()["code"] == "secrets_required"
    assert response.json()["fields"] == ["token"] and "env-token" not in response.content.decode()
    response = operator_client.patch(f"{URL}/gh", {"metadata": {"team": "infra"}}, format="json")
    assert response.status_code == 200 and response.json()["config"] == {"api_url": "https://api.github.com"}


@pytest.mark.django_db
def test_env_var_reveal_reads_the_environment(env_backend: None, monkeypatch: pytest.MonkeyPatch,
                                              operator_client: APIClient, user: Any) -> None:
    monkeypatch.setenv("SYNTHORG_SECRET_GH_TOKEN", "env-token")
    operator_client.post(URL, {"name": "gh", "connection_type": "github", "credentials": {}}, format="json")
    user.user_permissions.add(Permission.objects.get(codename="reveal_secret"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get(f"{URL}/gh/secrets/token").json() == {"field": "token", "value": "env-token"}
    monkeypatch.delenv("SYNTHORG_SECRET_GH_TOKEN")
    assert client.get(f"{URL}/gh/secrets/token").status_code == 404
    assert operator_client.delete(f"{URL}/gh").status_code == 204


def test_env_var_backend_interface() -> None:
    backend = get_backend("env_var")
    assert backend.read_only
    with pytest.raises(SecretBackendReadOnly) as caught:
        backend.store(connection=Connection(name="x"), values={"token": "v"}, ref=None)
    assert caught.value.status_code == 409 and "SYNTHORG_SECRET_X_TOKEN" in caught.value.detail
    assert backend.rotate(ref=SecretRef("env_var", "x")) is False
    assert backend.delete(ref=SecretRef("env_var", "x")) is None


@pytest.mark.parametrize("name", STUBS)
@pytest.mark.parametrize("operation", ["store", "retrieve", "delete", "rotate"])
def test_stub_backends_refuse_every_call(name: str, operation: str) -> None:
    backend = get_backend(name)
    with pytest.raises(SecretBackendUnavailable) as caught:
        getattr(backend, operation)(connection=Connection(name="x"), ref=None, values={})
    assert f"{name!r} is not available in this release" in caught.value.detail
    assert caught.value.code == "secret_backend_not_available"


@pytest.mark.django_db
@pytest.mark.parametrize("name", STUBS)
def test_stub_backend_create_fails_without_a_trace(name: str, integrations_config: Any,
                                                   operator_client: APIClient) -> None:
    integrations_config({"secret_backend": {"backend_type": name}})
    response = operator_client.post(URL, {"name": "gh", "connection_type": "github",
                                       "credentials": {"token": "t"}}, format="json")
    assert response.status_code == 503
    assert "not available in this release" in response.json()["detail"]
    assert not Connection.objects.exists() and not SecretRecord.objects.exists()


def test_unknown_backend_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        get_backend("plaintext")

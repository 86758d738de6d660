"""Environment secrets stay bound to the destinations their operator chose (issue 12).

Under the read-only ``env_var`` backend a connection's secrets are the variables named after
it (``SYNTHORG_SECRET_<NAME>_<FIELD>``). Creating a connection is what binds them to a
destination, so a user who may add, change and view connections, but not reveal secrets,
must not be able to create one whose name reads existing variables (its own name, or one
that differs only in case or punctuation) and point it at a host of their own; moving an
existing one is refused already. A real listener shows the secret never arrives, whatever
the sequence.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from integrations import health, services
from integrations.models import Connection
from integrations.secrets.env_var import variable_name
from integrations.types import REGISTRY
from synthorg.models import AuditEvent
from tests.peers.bait_listener import BaitListener, listener_set

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections"
CANARY = "CANARY-env-3d91b7a04c"
OPERATOR = "manage.py connections"  # the trusted terminal


@pytest.fixture
def env_backend(integrations_config: Any) -> None:
    integrations_config({"secret_backend": {"backend_type": "env_var"},
                         "connections": {"reveal_rate_per_minute": 0}})


def _user(django_user_model: Any, username: str, *codenames: str) -> Any:
    user = django_user_model.objects.create_user(username, password="pw-" + username + "-1")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="integrations",
                                                         codename__in=codenames))
    return django_user_model.objects.get(pk=user.pk)


@pytest.fixture
def editor(django_user_model: Any) -> Any:
    """May add, change and view connections (and force health checks), not reveal."""
    return _user(django_user_model, "editor", "add_connection", "change_connection", "view_connection")


@pytest.fixture
def editor_client(editor: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(editor)
    return client


@pytest.fixture
def listeners() -> Iterator[tuple[BaitListener, BaitListener, BaitListener]]:
    home, host_trap, port_trap = listener_set("http")
    yield home, host_trap, port_trap
    for listener in (home, host_trap, port_trap):
        listener.stop()


def _force_check_all(client: APIClient) -> None:
    for name in Connection.objects.values_list("name", flat=True):
        client.get(f"{URL}/{name}/health?force=true")


@pytest.mark.usefixtures("env_backend")
def test_an_editor_cannot_bind_the_environment_secret_to_a_listener_by_any_sequence(
    editor_client: APIClient, listeners: tuple[BaitListener, BaitListener, BaitListener],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home, trap, port_trap = listeners
    monkeypatch.setenv(variable_name("prod-api", "token"), CANARY)
    monkeypatch.setenv(variable_name("billing", "api_key"), CANARY + "-billing")  # no connection yet
    services.connection_create(name="prod-api", connection_type="generic_http",
                               credentials={"base_url": home.url}, actor=OPERATOR)

    # 1. Its own name, one the variables share (case, punctuation), and a name whose
    #    variables the operator set ahead of creating the connection: all 403, nothing stored.
    for name in ("prod.api", "PROD_API", "Prod-Api", "billing"):
        response = editor_client.post(URL, {"name": name, "connection_type": "generic_http",
                                            "credentials": {"base_url": trap.url}}, format="json")
        assert response.status_code == 403, (name, response.content)
        body = response.json()
        assert body["code"] == "secret_binding_forbidden" and "integrations.reveal_secret" in body["detail"]
        assert CANARY not in response.content.decode()
    assert list(Connection.objects.values_list("name", flat=True)) == ["prod-api"]
    refused = AuditEvent.objects.filter(action="connection.create", outcome="denied")
    assert refused.count() == 4 and {e.reason for e in refused} == {"secret_binding_forbidden"}
    assert all(e.actor_name == "editor" and CANARY not in str(e.details) for e in refused)
    assert refused.get(target="billing").details["variables"] == ["SYNTHORG_SECRET_BILLING_API_KEY"]

    # 2. Moving the existing connection: every destination field, alone or together.
    for patch in ({"base_url": trap.url}, {"base_url": port_trap.url}, {"auth_header": "X-Leak"},
                  {"auth_scheme": "Leak"}, {"base_url": trap.url, "auth_header": "X-Leak"}):
        response = editor_client.patch(f"{URL}/prod-api", {"credentials": patch}, format="json")
        assert response.status_code == 409 and response.json()["code"] == "secrets_required", response.content

    # 3. What the editor may do succeeds, and does not help: a connection without variables
    #    at the trap, then a forced check of everything.
    response = editor_client.post(URL, {"name": "mine", "connection_type": "generic_http",
                                        "credentials": {"base_url": trap.url}}, format="json")
    assert response.status_code == 201, response.content
    response = editor_client.patch(f"{URL}/prod-api", {"metadata": {"team": "x"}}, format="json")
    assert response.status_code == 200
    _force_check_all(editor_client)
    health.connection_health_check(name="prod-api", force=True, actor="test-operator")

    for listener in (trap, port_trap):
        assert not listener.leaked(CANARY), f"the environment's secret reached {listener.host}:{listener.port}"
    assert home.leaked(CANARY)  # the operator's destination does get it: the listener would notice


@pytest.mark.usefixtures("env_backend")
@pytest.mark.parametrize("type_name", sorted(t for t, c in REGISTRY.items() if c.secret_field_names))
def test_every_type_needs_reveal_to_bind_a_set_variable(type_name: str, editor_client: APIClient,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated from the registry: a new type with secret fields is covered without a new row."""
    field = REGISTRY[type_name].secret_field_names[-1]
    monkeypatch.setenv(variable_name("target", field), CANARY)
    response = editor_client.post(URL, {"name": "target", "connection_type": type_name,
                                        "credentials": {}}, format="json")
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "secret_binding_forbidden"
    assert not Connection.objects.exists()


@pytest.mark.usefixtures("env_backend")
def test_a_holder_of_reveal_and_the_terminal_may_bind(django_user_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable_name("prod-api", "token"), CANARY)
    monkeypatch.setenv(variable_name("second", "token"), CANARY)
    owner = _user(django_user_model, "owner", "add_connection", "reveal_secret")
    client = APIClient()
    client.force_authenticate(owner)
    response = client.post(URL, {"name": "prod-api", "connection_type": "generic_http",
                                 "credentials": {"base_url": "https://api.example.com"}}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["secret_fields"] == ["token"]
    services.connection_create(name="second", connection_type="generic_http",
                               credentials={"base_url": "https://api.example.com"}, actor=OPERATOR)


@pytest.mark.usefixtures("env_backend")
def test_an_editor_may_create_a_connection_no_variable_is_set_for(editor_client: APIClient) -> None:
    response = editor_client.post(URL, {"name": "plain", "connection_type": "generic_http",
                                        "credentials": {"base_url": "https://api.example.com"}}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["secret_fields"] == []


@pytest.mark.usefixtures("env_backend")
def test_two_connections_never_read_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even the operator: ``prod-api`` and ``prod.api`` would send one secret to two places."""
    monkeypatch.setenv(variable_name("prod-api", "token"), CANARY)
    services.connection_create(name="prod-api", connection_type="generic_http",
                               credentials={"base_url": "https://api.example.com"}, actor=OPERATOR)
    with pytest.raises(services.Conflict) as caught:
        services.connection_create(name="PROD.API", connection_type="github", credentials={}, actor=OPERATOR)
    assert caught.value.code == "env_var_variables_taken"
    assert "SYNTHORG_SECRET_PROD_API_TOKEN" in caught.value.detail and CANARY not in caught.value.detail
    assert Connection.objects.count() == 1


@pytest.mark.usefixtures("env_backend")
def test_the_admin_add_form_follows_the_rule(client: Client, django_user_model: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable_name("gh-main", "token"), CANARY)
    staff = _user(django_user_model, "staff-editor", "add_connection", "change_connection", "view_connection")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    data = {"name": "gh-main", "field_api_url": "http://127.0.0.2:9/api", "field_token": "",
            "field_signing_secret": "", "rate_limit_rpm": "0", "rate_limit_burst": "0",
            "rate_limit_max_concurrent": "0", "health_check_enabled": "on", "health_check_interval_seconds": "",
            "metadata": "{}"}
    response = client.post(f"{reverse('admin:integrations_connection_add')}?name=gh-main&connection_type=github",
                           data)
    assert response.status_code == 200  # the form again, with the reason
    assert "integrations.reveal_secret" in response.content.decode()
    assert CANARY not in response.content.decode()
    assert not Connection.objects.exists()
    assert AuditEvent.objects.get(action="connection.create").reason == "secret_binding_forbidden"

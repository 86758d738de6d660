"""A secret is bound to its destination (issue 12, section 1).

For every destination field the registry declares, a test generated from the declaration
PATCHes that field towards a listener on 127.0.0.2 (or another port) without the secrets:
409 ``secrets_required`` naming them, nothing stored, a refused attempt in the audit log, and
after a forced health check (and, for oauth_app, the grants that call out) the listener has
received nothing. Then the observed attacks, one by one, and the rule's other edges.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from integrations import health, selectors, services
from integrations.models import Connection
from integrations.types import REGISTRY
from synthorg.errors import SynthorgError
from synthorg.models import AuditEvent
from tests.peers.bait_listener import BaitListener, listener_set

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections"
CANARY = "CANARY-7f3a9c2e5b1d"


@dataclass(frozen=True)
class Listeners:
    home: BaitListener
    host_trap: BaitListener
    port_trap: BaitListener

    @property
    def traps(self) -> tuple[BaitListener, BaitListener]:
        return self.host_trap, self.port_trap


Move = Callable[[Listeners], dict[str, Any]]


@dataclass(frozen=True)
class TypeCase:
    protocol: str
    credentials: Callable[[Listeners], dict[str, Any]]  # the owner's connection, pointed at home
    moves: dict[str, Move]  # destination field → the hostile PATCH of `credentials`


def _oauth_credentials(ls: Listeners) -> dict[str, Any]:
    return {"client_id": "cid", "client_secret": CANARY, "token_url": f"{ls.home.url}/token",
            "auth_url": f"{ls.home.url}/authorize", "device_authorization_url": f"{ls.home.url}/device"}


# One row per type, one move per declared destination field; the test below checks that the
# rows cover the registry's declaration exactly, so a new type or field fails until added.
CASES: dict[str, TypeCase] = {
    "github": TypeCase("http", lambda ls: {"token": CANARY, "signing_secret": CANARY + "-sig",
                                           "api_url": ls.home.url}, {
        "api_url": lambda ls: {"api_url": ls.host_trap.url},
    }),
    "slack": TypeCase("http", lambda ls: {"token": CANARY, "signing_secret": CANARY + "-sig"}, {}),
    "generic_http": TypeCase("http", lambda ls: {"base_url": ls.home.url, "token": CANARY}, {
        "base_url": lambda ls: {"base_url": ls.host_trap.url},
        "auth_header": lambda ls: {"auth_header": "X-Leak"},
        "auth_scheme": lambda ls: {"auth_scheme": "Leak"},
    }),
    "database": TypeCase("postgres", lambda ls: {"dialect": "postgres", "host": "127.0.0.1", "port": ls.home.port,
                                                 "username": "app", "password": CANARY, "database": "app"}, {
        "host": lambda ls: {"host": ls.host_trap.host},
        "port": lambda ls: {"port": ls.port_trap.port},
        "dialect": lambda ls: {"dialect": "mysql"},
        "database": lambda ls: {"database": "other"},
    }),
    "smtp": TypeCase("smtp", lambda ls: {"host": "127.0.0.1", "port": ls.home.port, "username": "app",
                                         "password": CANARY, "use_tls": True}, {
        "host": lambda ls: {"host": ls.host_trap.host, "use_tls": False},
        "port": lambda ls: {"port": ls.port_trap.port, "use_tls": False},
        "use_tls": lambda ls: {"use_tls": False},
    }),
    "oauth_app": TypeCase("http", _oauth_credentials, {
        "token_url": lambda ls: {"token_url": f"{ls.host_trap.url}/token"},
        "auth_url": lambda ls: {"auth_url": f"{ls.host_trap.url}/authorize"},
        "device_authorization_url": lambda ls: {"device_authorization_url": f"{ls.host_trap.url}/device"},
        "issuer": lambda ls: {"issuer": ls.host_trap.url},
        "token_endpoint_auth_method": lambda ls: {"token_endpoint_auth_method": "client_secret_post"},
    }),
}

DESTINATIONS = [(t, f) for t, ctype in sorted(REGISTRY.items()) for f in ctype.destination_fields or ()]


@pytest.fixture
def loopback_everywhere(integrations_config: Any, oauthlib_loopback_http: None) -> None:
    # The GitHub check sends the token only to GitHub hosts or configured ones: both loopback
    # hosts are configured, so without the rule the token would reach the trap.
    integrations_config({"health": {"github_allowed_hosts": ["127.0.0.1", "127.0.0.2"]}})


def changer(django_user_model: Any) -> Any:
    """A user who may view and change connections, and nothing else (not staff)."""
    user = django_user_model.objects.create_user("changer", password="pw-changer-1")
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="integrations", codename__in=["change_connection", "view_connection"]))
    return django_user_model.objects.get(pk=user.pk)


@pytest.fixture
def changer_client(django_user_model: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(changer(django_user_model))
    return client


def listeners(protocol: str) -> Iterator[Listeners]:
    home, host_trap, port_trap = listener_set(protocol)
    try:
        yield Listeners(home, host_trap, port_trap)
    finally:
        for listener in (home, host_trap, port_trap):
            listener.stop()


def call_out(name: str, connection_type: str) -> None:
    """Everything that makes the service send this connection's secrets, as an operator would."""
    health.connection_health_check(name=name, force=True, actor="test-operator")
    if connection_type == "oauth_app":
        from oauthflow import services as oauth_services

        for start in (oauth_services.client_credentials_connect, oauth_services.device_flow_start):
            try:
                start(connection_name=name)
            except SynthorgError:
                pass  # home answers 401: the grant fails, and only home was asked


def test_the_cases_cover_every_declared_destination_field() -> None:
    assert set(CASES) == set(REGISTRY), "add a row to CASES for the new type"
    for type_name, case in CASES.items():
        assert set(case.moves) == set(REGISTRY[type_name].destination_fields or ()), type_name


@pytest.mark.usefixtures("loopback_everywhere")
@pytest.mark.parametrize(("type_name", "field"), DESTINATIONS, ids=[f"{t}.{f}" for t, f in DESTINATIONS])
def test_moving_a_destination_without_the_secrets_is_refused_and_nothing_is_sent(
    type_name: str, field: str, changer_client: APIClient,
) -> None:
    case = CASES[type_name]
    for ls in listeners(case.protocol):
        connection = services.connection_create(name="target", connection_type=type_name,
                                                credentials=case.credentials(ls), actor="owner")
        before = (dict(connection.config), str(connection.secret_id), connection.updated_at,
                  services.connection_secrets(connection))
        patch = case.moves[field](ls)

        response = changer_client.patch(f"{URL}/target", {"credentials": patch}, format="json")

        assert response.status_code == 409, response.content
        body = response.json()
        assert body["code"] == "secrets_required"
        assert body["fields"] == sorted(connection.secret_fields, key=REGISTRY[type_name].secret_field_names.index)
        assert field in body["detail"] and CANARY not in response.content.decode()
        stored = Connection.objects.get(pk=connection.pk)
        assert (stored.config, str(stored.secret_id), stored.updated_at,
                services.connection_secrets(stored)) == before
        event = AuditEvent.objects.filter(action="connection.update", target="target").get()
        assert (event.outcome, event.reason, event.actor_name) == ("denied", "secrets_required", "changer")
        assert field in event.details["destination_fields"]
        assert CANARY not in str(event.details)

        call_out("target", type_name)
        for trap in ls.traps:
            assert not trap.leaked(CANARY), f"{type_name}.{field}: the secret reached {trap.host}:{trap.port}"
        assert b"X-Leak" not in ls.home.received and b"Leak " + CANARY.encode() not in ls.home.received


@pytest.mark.usefixtures("loopback_everywhere")
@pytest.mark.parametrize(("type_name", "field"), DESTINATIONS, ids=[f"{t}.{f}" for t, f in DESTINATIONS])
def test_moving_a_destination_with_every_secret_is_accepted(type_name: str, field: str,
                                                           changer_client: APIClient) -> None:
    case = CASES[type_name]
    for ls in listeners(case.protocol):
        credentials = case.credentials(ls)
        connection = services.connection_create(name="target", connection_type=type_name,
                                                credentials=credentials, actor="owner")
        secrets = {k: f"new-{k}" for k in connection.secret_fields}
        response = changer_client.patch(f"{URL}/target", {"credentials": {**case.moves[field](ls), **secrets}},
                                        format="json")
        assert response.status_code == 200, response.content
        stored = Connection.objects.get(pk=connection.pk)
        assert services.connection_secrets(stored) == secrets
        event = AuditEvent.objects.get(action="connection.update", target="target")
        assert event.outcome == "success" and field in event.details["changed"]["destination_fields"]


# --- the observed attacks, as reported ------------------------------------------------------

def _refused(client: APIClient, patch: dict[str, Any]) -> None:
    response = client.patch(f"{URL}/target", {"credentials": patch}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "secrets_required", response.content


def test_generic_http_base_url_to_a_listener_gets_no_bearer_token(changer_client: APIClient) -> None:
    for ls in listeners("http"):
        services.connection_create(name="target", connection_type="generic_http",
                                   credentials={"base_url": ls.home.url, "token": CANARY})
        _refused(changer_client, {"base_url": ls.host_trap.url})
        health.connection_health_check(name="target", force=True)
        assert not ls.host_trap.leaked(CANARY) and ls.host_trap.connections == 0
        assert ls.home.leaked(CANARY)  # the owner's destination still gets it


def test_generic_http_auth_header_x_leak_is_refused(changer_client: APIClient) -> None:
    for ls in listeners("http"):
        services.connection_create(name="target", connection_type="generic_http",
                                   credentials={"base_url": ls.home.url, "api_key": CANARY})
        _refused(changer_client, {"auth_header": "X-Leak"})
        health.connection_health_check(name="target", force=True)
        assert b"x-leak" not in bytes(ls.home.received).lower()
        assert f"Authorization: {CANARY}".encode() in ls.home.received


def test_database_host_and_port_get_no_password(changer_client: APIClient) -> None:
    for ls in listeners("postgres"):
        services.connection_create(name="target", connection_type="database", credentials={
            "dialect": "postgres", "host": "127.0.0.1", "port": ls.home.port, "username": "app",
            "password": CANARY, "database": "app"})
        _refused(changer_client, {"host": "127.0.0.2"})
        _refused(changer_client, {"port": ls.port_trap.port})
        health.connection_health_check(name="target", force=True)
        assert not ls.host_trap.leaked(CANARY) and not ls.port_trap.leaked(CANARY)
        assert ls.home.leaked(CANARY)  # the listener really does collect a PostgreSQL password


def test_smtp_host_without_tls_gets_no_auth_plain(changer_client: APIClient) -> None:
    for ls in listeners("smtp"):
        services.connection_create(name="target", connection_type="smtp", credentials={
            "host": "127.0.0.1", "port": ls.home.port, "username": "app", "password": CANARY})
        _refused(changer_client, {"host": "127.0.0.2", "use_tls": False})
        health.connection_health_check(name="target", force=True)
        assert not ls.host_trap.leaked(CANARY) and ls.host_trap.connections == 0


@pytest.mark.usefixtures("oauthlib_loopback_http")
def test_oauth_token_url_gets_no_client_credentials(changer_client: APIClient) -> None:
    from oauthflow import services as oauth_services

    for ls in listeners("http"):
        services.connection_create(name="target", connection_type="oauth_app", credentials=_oauth_credentials(ls))
        _refused(changer_client, {"token_url": f"{ls.host_trap.url}/token"})
        with pytest.raises(SynthorgError):
            oauth_services.client_credentials_connect(connection_name="target")
        assert not ls.host_trap.leaked(CANARY) and ls.host_trap.connections == 0
        assert ls.home.leaked(CANARY)  # Basic auth with the client secret went to the owner's token_url


# --- edges of the rule ----------------------------------------------------------------------

def test_the_admin_style_full_form_without_changes_needs_no_secret() -> None:
    """The admin form sends every non-secret field; unchanged values are no destination change."""
    services.connection_create(name="target", connection_type="smtp", credentials={
        "host": "mx.internal", "username": "app", "password": CANARY})
    updated = services.connection_update(name="target", data={"credentials": {
        "host": "mx.internal", "port": 587, "use_tls": True, "username": "app"}, "metadata": {"a": "b"}})
    assert updated.metadata == {"a": "b"}


def test_removing_a_secret_counts_as_giving_it() -> None:
    services.connection_create(name="target", connection_type="generic_http", credentials={
        "base_url": "https://api.example.com", "token": CANARY, "signing_secret": "sig"})
    updated = services.connection_update(name="target", data={"credentials": {
        "base_url": "https://other.example.com", "token": None, "signing_secret": "sig2"}})
    assert updated.config["base_url"] == "https://other.example.com"
    assert services.connection_secrets(updated) == {"signing_secret": "sig2"}


def test_a_connection_without_secrets_may_move() -> None:
    services.connection_create(name="target", connection_type="smtp", credentials={"host": "mx.internal"})
    assert services.connection_update(name="target", data={"credentials": {"host": "mx2.internal"}}).config[
        "host"] == "mx2.internal"


def test_the_error_names_only_the_missing_secrets() -> None:
    services.connection_create(name="target", connection_type="github", credentials={
        "token": CANARY, "signing_secret": "sig"})
    with pytest.raises(services.SecretsRequired) as caught:
        services.connection_update(name="target", data={"credentials": {
            "api_url": "https://github.example.com/api/v3", "token": "new"}})
    assert caught.value.fields == ["signing_secret"]
    assert selectors.connection_get("target").config["api_url"] == "https://api.github.com"


def test_env_var_connections_cannot_move(integrations_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from integrations.secrets.env_var import variable_name

    integrations_config({"secret_backend": {"backend_type": "env_var"}})
    monkeypatch.setenv(variable_name("target", "token"), CANARY)
    services.connection_create(name="target", connection_type="generic_http",
                               credentials={"base_url": "https://api.example.com"})
    with pytest.raises(services.SecretsRequired) as caught:
        services.connection_update(name="target", data={"credentials": {"base_url": "https://evil.example"}})
    assert caught.value.fields == ["token"] and "environment" in caught.value.detail
    # A change that is not a destination still works.
    services.connection_update(name="target", data={"credentials": {"signature_prefix": "sha256="}})


# --- OAuth tokens do not follow a new token_url ---------------------------------------------

def _store_token(name: str) -> None:
    from oauthflow import services as oauth_services
    from oauthflow.grants import TokenSet
    from oauthflow.models import GrantType

    connection = selectors.connection_get(name)
    tokens = TokenSet(access_token="at-" + CANARY, refresh_token="rt-" + CANARY, token_type="Bearer",
                      expires_in=3600, scopes=("read",))
    oauth_services.token_store(connection=connection, grant_type=GrantType.AUTHORIZATION_CODE, tokens=tokens,
                               requested_scopes=["read"])


@pytest.mark.parametrize("field", ["token_url", "auth_url", "device_authorization_url"])
def test_changing_an_oauth_endpoint_drops_the_tokens(field: str) -> None:
    from oauthflow import selectors as oauth_selectors

    services.connection_create(name="target", connection_type="oauth_app", credentials={
        "client_id": "cid", "client_secret": CANARY, "token_url": "https://idp.example.com/token",
        "auth_url": "https://idp.example.com/authorize"})
    _store_token("target")
    services.connection_update(name="target", data={"credentials": {
        field: "https://other-idp.example.com/x", "client_secret": CANARY}}, actor="owner")
    connection = selectors.connection_get("target")
    assert oauth_selectors.token_get(connection) is None
    assert oauth_selectors.oauth_status(connection)["status"] == "not_connected"
    event = AuditEvent.objects.get(action="oauth.disconnect", target="target")
    assert event.reason == "destination_changed" and event.details["changed"] == [field]
    assert CANARY not in str(event.details)


def test_a_refused_oauth_move_keeps_the_tokens() -> None:
    from oauthflow import selectors as oauth_selectors

    services.connection_create(name="target", connection_type="oauth_app", credentials={
        "client_id": "cid", "client_secret": CANARY, "token_url": "https://idp.example.com/token"})
    _store_token("target")
    with pytest.raises(services.SecretsRequired):
        services.connection_update(name="target", data={"credentials": {"token_url": "https://evil.example/t"}})
    assert oauth_selectors.token_get(selectors.connection_get("target")) is not None
    assert not AuditEvent.objects.filter(action="oauth.disconnect").exists()


def test_other_oauth_changes_keep_the_tokens() -> None:
    from oauthflow import selectors as oauth_selectors

    services.connection_create(name="target", connection_type="oauth_app", credentials={
        "client_id": "cid", "client_secret": CANARY, "token_url": "https://idp.example.com/token"})
    _store_token("target")
    services.connection_update(name="target", data={"credentials": {"scopes": ["read", "write"]}})
    assert oauth_selectors.token_get(selectors.connection_get("target")) is not None

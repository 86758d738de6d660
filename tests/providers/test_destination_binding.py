"""A provider sends a connection's credential only where the connection's owner sends it (issue 12).

A provider config names a connection and a ``base_url``; whoever consumes it sends the key
`resolve_credentials` returns to that URL. A user who may add and change provider configs,
but holds no right on the connection and cannot reveal its secret, must not be able to pick
that URL: a provider linked to a connection takes its destination from the connection (an
empty ``base_url`` is the connection's URL; a ``base_url`` under it is allowed), and any
other binding needs ``integrations.reveal_secret``. A consumer that does what a provider
client does shows that a listener never receives the key.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.test import APIClient

from integrations import services as connection_services
from providers import services
from providers.models import ProviderConfig
from synthorg.models import AuditEvent
from tests.peers.bait_listener import BaitListener, listener_set

pytestmark = pytest.mark.django_db

LIST = "/api/v1/providers"
CANARY = "CANARY-provider-bind-6e02c1"


def _user(django_user_model: Any, username: str, *perms: str, staff: bool = False) -> Any:
    user = django_user_model.objects.create_user(username, password="pw-" + username + "-1", is_staff=staff)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    return django_user_model.objects.get(pk=user.pk)


PROVIDER_EDITOR = ("providers.add_providerconfig", "providers.change_providerconfig",
                   "providers.view_providerconfig")


@pytest.fixture
def editor_client(django_user_model: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(_user(django_user_model, "prov-editor", *PROVIDER_EDITOR))
    return client


@pytest.fixture
def revealer_client(django_user_model: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(_user(django_user_model, "revealer", *PROVIDER_EDITOR, "integrations.reveal_secret"))
    return client


@pytest.fixture
def listeners() -> Iterator[tuple[BaitListener, BaitListener, BaitListener]]:
    home, host_trap, port_trap = listener_set("http")
    yield home, host_trap, port_trap
    for listener in (home, host_trap, port_trap):
        listener.stop()


def consume_every_provider() -> None:
    """What a provider client does: resolve the credential, send it to where it says."""
    for provider in ProviderConfig.objects.select_related("connection"):
        try:
            resolved = services.resolve_credentials(provider)
        except services.ProviderCredentialsUnavailable:
            continue
        if not resolved.base_url:
            continue  # the driver's default host: never a listener here
        header = ({"Authorization": f"Bearer {resolved.value}"} if resolved.kind == "bearer"
                  else {"x-api-key": resolved.value})
        try:
            requests.post(resolved.base_url.rstrip("/") + "/chat/completions", headers=header, json={}, timeout=3)
        except requests.RequestException:
            pass


def _forbidden(response: Any) -> None:
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "secret_binding_forbidden" and "integrations.reveal_secret" in body["detail"]
    assert CANARY not in response.content.decode()


def test_a_provider_editor_cannot_send_a_connection_key_to_a_listener(
    editor_client: APIClient, listeners: tuple[BaitListener, BaitListener, BaitListener],
) -> None:
    home, trap, port_trap = listeners
    connection_services.connection_create(name="llm-gateway", connection_type="generic_http",
                                          credentials={"base_url": f"{home.url}/v1", "token": CANARY})

    # Create linked to a base_url of their own: elsewhere, another port, a look-alike path.
    for base_url in (trap.url, f"{port_trap.url}/v1", f"{home.url}/v1-evil", f"{home.url}/"):
        _forbidden(editor_client.post(LIST, {"name": "mine", "driver": "openai", "connection_name": "llm-gateway",
                                             "base_url": base_url}, format="json"))
    assert not ProviderConfig.objects.exists()

    # Allowed: the connection's own URL (empty = inherit it) or a path under it.
    assert editor_client.post(LIST, {"name": "inherit", "driver": "openai", "connection_name": "llm-gateway"},
                              format="json").status_code == 201
    assert editor_client.post(LIST, {"name": "under", "driver": "generic", "connection_name": "llm-gateway",
                                     "base_url": f"{home.url}/v1/openai"}, format="json").status_code == 201
    # ... then moved: PATCH base_url, and link an unlinked provider already pointing at the trap.
    _forbidden(editor_client.patch(f"{LIST}/under", {"base_url": trap.url}, format="json"))
    _forbidden(editor_client.patch(f"{LIST}/inherit", {"base_url": f"{port_trap.url}/v1"}, format="json"))
    assert editor_client.post(LIST, {"name": "loose", "driver": "openai", "base_url": trap.url},
                              format="json").status_code == 201
    _forbidden(editor_client.patch(f"{LIST}/loose", {"connection_name": "llm-gateway"}, format="json"))
    # Detaching and re-linking with another base_url in one request is the same binding.
    _forbidden(editor_client.patch(f"{LIST}/under", {"connection_name": "llm-gateway", "base_url": trap.url},
                                   format="json"))

    stored = {p.name: (p.base_url, p.connection_id is not None) for p in ProviderConfig.objects.all()}
    assert stored == {"inherit": ("", True), "under": (f"{home.url}/v1/openai", True), "loose": (trap.url, False)}
    refused = AuditEvent.objects.filter(action__in=["provider.create", "provider.update"], outcome="denied")
    assert refused.count() == 8
    assert all(e.reason == "secret_binding_forbidden" and e.actor_name == "prov-editor" for e in refused)
    assert all(e.details["connection_name"] == "llm-gateway" and CANARY not in str(e.details) for e in refused)

    consume_every_provider()
    for listener in (trap, port_trap):
        assert not listener.leaked(CANARY), f"the key reached {listener.host}:{listener.port}"
    assert home.leaked(CANARY)  # the consumer did send it, to the owner's destination


def test_resolve_credentials_names_the_destination(make_provider: Any) -> None:
    connection_services.connection_create(name="gw", connection_type="generic_http", credentials={
        "base_url": "https://gw.example.test/v1", "token": CANARY})
    connection_services.connection_create(name="gh", connection_type="github", credentials={"token": CANARY})
    assert services.resolve_credentials(make_provider(name="a", connection_name="gw")).base_url == \
        "https://gw.example.test/v1"
    assert services.resolve_credentials(make_provider(name="b", connection_name="gw",
                                                      base_url="https://gw.example.test/v1/x")).base_url == \
        "https://gw.example.test/v1/x"
    assert services.resolve_credentials(make_provider(name="c", connection_name="gh")).base_url == \
        "https://api.github.com"
    assert CANARY not in repr(services.resolve_credentials(make_provider(name="d", connection_name="gh")))


def test_an_oauth_app_token_names_no_url_so_linking_needs_reveal(editor_client: APIClient,
                                                                  revealer_client: APIClient) -> None:
    connection_services.connection_create(name="idp", connection_type="oauth_app", credentials={
        "client_id": "cid", "client_secret": CANARY, "token_url": "https://idp.example.test/token"})
    body = {"name": "vertex", "driver": "google", "connection_name": "idp"}
    _forbidden(editor_client.post(LIST, body, format="json"))
    assert revealer_client.post(LIST, body, format="json").status_code == 201


def test_a_holder_of_reveal_may_bind_anywhere_and_commands_are_trusted(revealer_client: APIClient) -> None:
    connection_services.connection_create(name="gw", connection_type="generic_http",
                                          credentials={"base_url": "https://gw.example.test", "token": CANARY})
    response = revealer_client.post(LIST, {"name": "p", "driver": "openai", "connection_name": "gw",
                                           "base_url": "https://api.openai.com/v1"}, format="json")
    assert response.status_code == 201, response.content
    assert revealer_client.patch(f"{LIST}/p", {"base_url": "https://other.example.test"},
                                 format="json").status_code == 200
    services.provider_create(name="q", driver="openai", connection_name="gw", base_url="https://elsewhere.test",
                             actor="manage.py providers")


def test_changes_that_are_no_binding_stay_free(editor_client: APIClient, revealer_client: APIClient) -> None:
    """A provider bound by a reveal holder keeps its binding through an editor's other changes."""
    connection_services.connection_create(name="gw", connection_type="generic_http",
                                          credentials={"base_url": "https://gw.example.test", "token": CANARY})
    revealer_client.post(LIST, {"name": "p", "driver": "openai", "connection_name": "gw",
                                "base_url": "https://api.openai.com/v1"}, format="json")
    response = editor_client.patch(f"{LIST}/p", {"model": "gpt-4.1", "base_url": "https://api.openai.com/v1",
                                                 "connection_name": "gw"}, format="json")
    assert response.status_code == 200, response.content
    assert editor_client.patch(f"{LIST}/p", {"connection_name": None}, format="json").status_code == 200


# --- the admin ----------------------------------------------------------------------------------

@pytest.fixture
def staff_editor(django_user_model: Any) -> Client:
    client = Client()
    client.force_login(_user(django_user_model, "staff-prov", *PROVIDER_EDITOR, staff=True))
    return client


def test_the_admin_add_form_refuses_a_foreign_base_url(staff_editor: Client) -> None:
    connection = connection_services.connection_create(
        name="gw", connection_type="generic_http", credentials={"base_url": "https://gw.example.test",
                                                                "token": CANARY})
    response = staff_editor.post("/admin/providers/providerconfig/add/", {
        "name": "mine", "driver": "openai", "base_url": "http://127.0.0.2:9/", "model": "m",
        "connection": connection.pk})
    assert response.status_code == 200, response.status_code
    body = response.content.decode()
    assert "integrations.reveal_secret" in body and CANARY not in body
    assert not ProviderConfig.objects.exists()
    event = AuditEvent.objects.get(action="provider.create")
    assert (event.outcome, event.reason, event.actor_name) == ("denied", "secret_binding_forbidden", "staff-prov")

    response = staff_editor.post("/admin/providers/providerconfig/add/", {
        "name": "mine", "driver": "openai", "base_url": "", "model": "m", "connection": connection.pk})
    assert response.status_code == 302
    assert ProviderConfig.objects.get().connection_id == connection.pk


def test_the_admin_change_form_refuses_moving_a_linked_provider(staff_editor: Client) -> None:
    connection_services.connection_create(name="gw", connection_type="generic_http",
                                          credentials={"base_url": "https://gw.example.test", "token": CANARY})
    provider = services.provider_create(name="p", driver="openai", connection_name="gw")
    response = staff_editor.post(f"/admin/providers/providerconfig/{provider.pk}/change/", {
        "driver": "openai", "base_url": "https://evil.example.test", "model": "",
        "connection": provider.connection_id})
    assert response.status_code == 200
    assert "integrations.reveal_secret" in response.content.decode()
    provider.refresh_from_db()
    assert provider.base_url == ""
    assert AuditEvent.objects.get(action="provider.update").outcome == "denied"


# --- at run time: the binding is checked again where the key is handed out ---------------------

def test_when_the_owner_moves_the_connection_the_old_host_gets_no_new_key(
    editor_client: APIClient, revealer_client: APIClient,
    listeners: tuple[BaitListener, BaitListener, BaitListener],
) -> None:
    """The owner moves the gateway from A (say, compromised) to B with a new token: a provider
    left pointing under A, or approved elsewhere, must not carry the new token there."""
    old_host, elsewhere, new_host = listeners
    new_token = CANARY + "-rotated"
    connection_services.connection_create(name="gw", connection_type="generic_http",
                                          credentials={"base_url": f"{old_host.url}/v1", "token": CANARY})
    assert editor_client.post(LIST, {"name": "under", "driver": "generic", "connection_name": "gw",
                                     "base_url": f"{old_host.url}/v1/x"}, format="json").status_code == 201
    assert editor_client.post(LIST, {"name": "follows", "driver": "generic", "connection_name": "gw"},
                              format="json").status_code == 201
    assert revealer_client.post(LIST, {"name": "approved", "driver": "generic", "connection_name": "gw",
                                       "base_url": elsewhere.url}, format="json").status_code == 201
    assert ProviderConfig.objects.get(name="approved").binding_approved
    assert services.resolve_credentials(ProviderConfig.objects.get(name="approved")).base_url == elsewhere.url

    connection_services.connection_update(name="gw", data={"credentials": {
        "base_url": f"{new_host.url}/v1", "token": new_token}}, actor="owner")

    for name in ("under", "approved"):
        with pytest.raises(services.ProviderCredentialsUnavailable) as caught:
            services.resolve_credentials(ProviderConfig.objects.get(name=name))
        assert caught.value.code == "provider_destination_unapproved" and new_token not in caught.value.detail
    assert not ProviderConfig.objects.get(name="approved").binding_approved
    lapsed = AuditEvent.objects.filter(action="provider.binding_lapsed")
    assert sorted(lapsed.values_list("target", flat=True)) == ["approved", "under"]
    assert all(e.reason == "connection_destination_changed" for e in lapsed)

    consume_every_provider()
    assert not old_host.leaked(new_token) and not elsewhere.leaked(new_token)
    assert new_host.leaked(new_token)  # "follows" took the connection's new URL

    # The resolve check says why and how to fix it; a reveal holder approves again.
    check = editor_client.post(f"{LIST}/approved/resolve-check").json()
    assert check["resolvable"] is False and check["code"] == "provider_destination_unapproved"
    assert editor_client.patch(f"{LIST}/approved", {"base_url": elsewhere.url, "model": "m2"},
                               format="json").status_code == 200  # other edits pass, approve nothing
    assert not ProviderConfig.objects.get(name="approved").binding_approved
    assert revealer_client.patch(f"{LIST}/approved", {"base_url": elsewhere.url},
                                 format="json").status_code == 200  # saved again as it stands
    assert services.resolve_credentials(ProviderConfig.objects.get(name="approved")).value == new_token


def test_a_row_bound_outside_without_approval_resolves_nothing(make_connection: Any, make_provider: Any) -> None:
    """A provider stored before the rule (or forced into the database) is checked where the key leaves."""
    make_connection(name="gw")
    provider = make_provider(name="old", connection_name="gw")
    ProviderConfig.objects.filter(pk=provider.pk).update(base_url="https://collector.example.test")
    with pytest.raises(services.ProviderCredentialsUnavailable) as caught:
        services.resolve_credentials(ProviderConfig.objects.get(pk=provider.pk))
    assert caught.value.code == "provider_destination_unapproved"


def test_moving_a_provider_with_an_embedded_key_needs_the_key_again_or_the_permission(
    editor_client: APIClient, revealer_client: APIClient,
) -> None:
    """A provider's own (embedded) key goes to its base_url: an editor who cannot read the key must
    not send it to a host of their choosing by changing base_url alone."""
    services.provider_create(name="own-key", driver="openai", base_url="https://api.openai.com/v1", api_key=CANARY)
    response = editor_client.patch(f"{LIST}/own-key", {"base_url": "https://collector.example/v1"}, format="json")
    assert response.status_code == 403, response.content
    assert CANARY not in response.content.decode()
    assert ProviderConfig.objects.get(name="own-key").base_url == "https://api.openai.com/v1"
    from synthorg.models import AuditEvent

    refusal = AuditEvent.objects.get(action="provider.update", target="own-key", outcome="denied")
    assert refusal.reason == "secret_binding_forbidden" and CANARY not in str(refusal.details)
    # Given again with the move, the key is the editor's own choice: allowed.
    moved = editor_client.patch(f"{LIST}/own-key", {"base_url": "https://collector.example/v1",
                                                    "api_key": "sk-editor-own"}, format="json")
    assert moved.status_code == 200, moved.content
    assert revealer_client.patch(f"{LIST}/own-key", {"base_url": "https://api.openai.com/v1"},
                                 format="json").status_code == 200

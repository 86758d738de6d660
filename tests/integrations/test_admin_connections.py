"""The connections admin: two-step add, forms from the registry, saves and deletes through the services."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from integrations import dependants, services
from integrations.models import Connection, SecretRecord
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:integrations_connection_add")
LIST_URL = reverse("admin:integrations_connection_changelist")
TOKEN = "ghp_admin_form_token_value_0001"


def change_url(connection: Connection) -> str:
    return reverse("admin:integrations_connection_change", args=[connection.pk])


def delete_url(connection: Connection) -> str:
    return reverse("admin:integrations_connection_delete", args=[connection.pk])


@pytest.fixture
def admin_client(superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def github_post(**overrides: Any) -> dict[str, Any]:
    data = {"name": "gh-main", "field_token": TOKEN, "field_api_url": "https://api.github.com",
            "field_signing_secret": "", "rate_limit_rpm": "0", "rate_limit_burst": "0",
            "rate_limit_max_concurrent": "0", "health_check_enabled": "on", "health_check_interval_seconds": "",
            "metadata": "{}"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def make_github(name: str = "gh-main", **credentials: Any) -> Connection:
    return services.connection_create(name=name, connection_type="github",
                                      credentials={"token": TOKEN, **credentials})


def edit_post(connection: Connection, **overrides: Any) -> dict[str, Any]:
    data = {"field_api_url": connection.config.get("api_url", ""), "field_token": "", "field_signing_secret": "",
            "rate_limit_rpm": str(connection.rate_limit_rpm), "rate_limit_burst": str(connection.rate_limit_burst),
            "rate_limit_max_concurrent": str(connection.rate_limit_max_concurrent),
            "health_check_enabled": "on", "health_check_interval_seconds": "", "metadata": "{}"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- add ------------------------------------------------------------------------------------------

def test_add_without_type_shows_type_chooser(admin_client: Client) -> None:
    response = admin_client.get(ADD_URL)
    assert response.status_code == 200
    assert b"Step 1 of 2" in response.content
    assert b'name="connection_type"' in response.content
    assert b"field_token" not in response.content


def test_add_after_save_and_add_another_shows_unbound_chooser(admin_client: Client) -> None:
    response = admin_client.get(ADD_URL, {"_changelist_filters": "connection_type=github"})
    assert b"Step 1 of 2" in response.content
    assert not response.context["chooser"].is_bound


def test_add_with_unknown_type_shows_chooser_error(admin_client: Client) -> None:
    response = admin_client.get(ADD_URL, {"name": "x1", "connection_type": "ftp"})
    assert b"Step 1 of 2" in response.content
    assert "ftp" in response.context["chooser"].errors["connection_type"][0]


def test_add_with_reserved_name_shows_chooser_error(admin_client: Client) -> None:
    response = admin_client.get(ADD_URL, {"name": "types", "connection_type": "github"})
    assert "reserved" in response.context["chooser"].errors["name"][0]


def test_add_with_chosen_type_shows_fields_of_that_type(admin_client: Client) -> None:
    response = admin_client.get(ADD_URL, {"name": "gh-main", "connection_type": "github"})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="field_token"' in body and 'name="field_api_url"' in body and 'name="field_signing_secret"' in body
    assert 'type="password"' in body
    assert 'value="gh-main"' in body  # step one's name carried over
    assert "field_host" not in body  # smtp's fields are not there


def test_add_valid_form_creates_through_service(admin_client: Client, superuser: Any) -> None:
    response = admin_client.post(f"{ADD_URL}?name=gh-main&connection_type=github", github_post())
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    connection = Connection.objects.get(name="gh-main")
    assert connection.connection_type == "github"
    assert connection.secret_fields == ["token"]
    assert services.connection_secrets(connection) == {"token": TOKEN}
    event = AuditEvent.objects.get(action="connection.create", target="gh-main")
    assert event.actor_name == superuser.username
    assert LogEntry.objects.filter(object_id=str(connection.pk), action_flag=1).exists()


def test_add_service_rule_broken_shows_on_field_and_writes_nothing(admin_client: Client) -> None:
    response = admin_client.post(f"{ADD_URL}?name=gh-main&connection_type=github",
                                 github_post(field_api_url="http://api.example.com"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "https" in errors["field_api_url"][0]
    assert not Connection.objects.exists()
    assert not SecretRecord.objects.exists()
    assert not AuditEvent.objects.filter(action="connection.create").exists()
    assert not LogEntry.objects.exists()
    assert TOKEN not in response.content.decode()  # the re-shown form does not echo the secret


def test_add_missing_required_secret_names_the_field(admin_client: Client) -> None:
    response = admin_client.post(f"{ADD_URL}?name=gh-main&connection_type=github", github_post(field_token=""))
    assert response.context["adminform"].form.errors["field_token"] == ["is required"]
    assert not Connection.objects.exists()


def test_add_cross_field_rule_names_the_field(admin_client: Client) -> None:
    data = {"name": "mail", "field_host": "smtp.example.com", "field_port": "587", "field_username": "bot",
            "field_password": "", "field_use_tls": "true", "rate_limit_rpm": "0", "rate_limit_burst": "0",
            "rate_limit_max_concurrent": "0", "metadata": "{}"}
    response = admin_client.post(f"{ADD_URL}?name=mail&connection_type=smtp", data)
    assert "together" in response.context["adminform"].form.errors["field_password"][0]
    assert not Connection.objects.exists()


def test_add_duplicate_name_shows_conflict(admin_client: Client) -> None:
    make_github("GH-Main")
    response = admin_client.post(f"{ADD_URL}?name=gh-main&connection_type=github", github_post())
    assert "already exists" in " ".join(response.context["adminform"].form.non_field_errors())
    assert Connection.objects.count() == 1


def test_add_over_type_limit_shows_limit(admin_client: Client, integrations_config: Any) -> None:
    integrations_config({"connections": {"max_connections_per_type": 1}})
    make_github("gh-one")
    response = admin_client.post(f"{ADD_URL}?name=gh-main&connection_type=github", github_post())
    assert "limit of 1 github" in " ".join(response.context["adminform"].form.non_field_errors())
    assert Connection.objects.count() == 1


def test_add_list_and_mapping_fields_are_converted(admin_client: Client) -> None:
    data = {"name": "app", "field_client_id": "cid", "field_client_secret": "cs-value-1",
            "field_token_url": "https://idp.example.com/token", "field_scopes": "openid profile, email",
            "field_token_endpoint_auth_method": "", "field_extra_authorization_params": '{"prompt": "consent"}',
            "field_pkce": "unknown", "rate_limit_rpm": "0", "rate_limit_burst": "0",
            "rate_limit_max_concurrent": "0", "metadata": '{"team": "ops"}'}
    response = admin_client.post(f"{ADD_URL}?name=app&connection_type=oauth_app", data)
    assert response.status_code == 302
    connection = Connection.objects.get(name="app")
    assert connection.config["scopes"] == ["openid", "profile", "email"]
    assert connection.config["extra_authorization_params"] == {"prompt": "consent"}
    assert connection.config["pkce"] is True  # the default, since "(default)" was chosen
    assert connection.metadata == {"team": "ops"}


# --- change ---------------------------------------------------------------------------------------

def test_change_form_never_renders_secret_and_shows_webhook_url(admin_client: Client, settings: Any) -> None:
    settings.SYNTHORG_PUBLIC_URL = "https://hooks.example.com"
    connection = make_github(signing_secret="whsec-admin-change-0001")
    body = admin_client.get(change_url(connection)).content.decode()
    assert TOKEN not in body and "whsec-admin-change-0001" not in body
    assert "https://hooks.example.com/api/v1/webhooks/gh-main/auto" in body
    assert "Leave blank to keep" in body
    assert 'name="clear_token"' in body


def test_change_blank_secret_keeps_stored_value(admin_client: Client) -> None:
    connection = make_github()
    # Not a destination change (api_url would need the token again: test_destination_admin.py).
    response = admin_client.post(change_url(connection), edit_post(connection, rate_limit_rpm="10"))
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.rate_limit_rpm == 10
    assert services.connection_secrets(connection) == {"token": TOKEN}
    event = AuditEvent.objects.get(action="connection.update")
    assert event.details["changed"] == {"rate_limit": ["requests_per_minute"]}


def test_change_new_secret_replaces_and_logs_field_name_only(admin_client: Client) -> None:
    connection = make_github()
    admin_client.post(change_url(connection), edit_post(connection, field_token="ghp_new_value_0002"))
    connection.refresh_from_db()
    assert services.connection_secrets(connection) == {"token": "ghp_new_value_0002"}
    entry = LogEntry.objects.get(object_id=str(connection.pk), action_flag=2)
    assert "token" in entry.get_change_message()
    assert "ghp_new_value_0002" not in entry.change_message


def test_change_clear_optional_secret_removes_it(admin_client: Client) -> None:
    connection = make_github(signing_secret="whsec-to-clear")
    admin_client.post(change_url(connection), edit_post(connection, clear_signing_secret="on"))
    connection.refresh_from_db()
    assert connection.secret_fields == ["token"]
    assert services.connection_secrets(connection) == {"token": TOKEN}


def test_change_clear_required_secret_is_refused(admin_client: Client) -> None:
    connection = make_github()
    response = admin_client.post(change_url(connection), edit_post(connection, clear_token="on"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["field_token"] == ["is required"]
    connection.refresh_from_db()
    assert services.connection_secrets(connection) == {"token": TOKEN}


def test_change_value_and_clear_together_is_refused(admin_client: Client) -> None:
    connection = make_github()
    response = admin_client.post(change_url(connection), edit_post(connection, field_token="x", clear_token="on"))
    assert "not both" in response.context["adminform"].form.errors["clear_token"][0]
    assert not AuditEvent.objects.filter(action="connection.update").exists()


def test_change_without_changes_writes_no_audit_event(admin_client: Client) -> None:
    connection = make_github()
    response = admin_client.post(change_url(connection), edit_post(connection))
    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action="connection.update").exists()


def test_change_rate_limit_rule_names_the_field(admin_client: Client) -> None:
    connection = make_github()
    response = admin_client.post(change_url(connection), edit_post(connection, health_check_interval_seconds="5"))
    assert "between 10 and 86400" in response.context["adminform"].form.errors["health_check_interval_seconds"][0]


# --- list -----------------------------------------------------------------------------------------

def test_changelist_shows_badge_and_filters_by_type_and_health(admin_client: Client) -> None:
    make_github("gh-a")
    services.connection_create(name="chat", connection_type="slack", credentials={"token": "xoxb-1"})
    Connection.objects.filter(name="chat").update(health_status=Connection.HealthStatus.UNHEALTHY)
    body = admin_client.get(LIST_URL).content.decode()
    assert "health-unhealthy" in body and ">Unhealthy<" in body and ">Unknown<" in body
    assert "gh-a" in admin_client.get(LIST_URL, {"connection_type": "github"}).content.decode()
    assert "chat" not in admin_client.get(LIST_URL, {"connection_type": "github"}).content.decode()
    unhealthy = admin_client.get(LIST_URL, {"health_status__exact": "unhealthy"}).content.decode()
    assert "chat" in unhealthy and "gh-a" not in unhealthy
    searched = admin_client.get(LIST_URL, {"q": "gh-"}).content.decode()
    assert "gh-a" in searched and "/chat/" not in searched


def test_staff_without_permission_cannot_add(client: Client, staff_user: Any) -> None:
    client.force_login(staff_user)
    assert client.get(ADD_URL).status_code == 403


# --- delete ---------------------------------------------------------------------------------------

def test_delete_goes_through_service_and_writes_audit_event(admin_client: Client, superuser: Any) -> None:
    connection = make_github()
    response = admin_client.post(delete_url(connection), {"post": "yes"})
    assert response.status_code == 302
    assert not Connection.objects.exists()
    assert not SecretRecord.objects.exists()
    event = AuditEvent.objects.get(action="connection.delete", target="gh-main")
    assert event.actor_name == superuser.username and event.details["secret_records"] == 1


def test_delete_confirmation_names_what_goes_with_it(admin_client: Client) -> None:
    connection = make_github()
    body = admin_client.get(delete_url(connection)).content.decode()
    assert "stored secrets" in body and "OAuth tokens" in body and "webhook deliveries" in body
    assert "Secret record" in body  # the cascade collector lists the encrypted row itself
    assert TOKEN not in body


@pytest.fixture
def blocking_dependant(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    removed: list[str] = []

    def remove(connection: Connection, *, actor: Any = None, request: Any = None) -> None:
        removed.append(connection.name)

    monkeypatch.setitem(dependants._registry, "test-installs", dependants.Dependant(
        label="MCP installations", list_names=lambda c: [] if c.name in removed else ["github-mcp"],
        remove=remove))
    return removed


def test_delete_with_dependants_is_protected_unless_forced(admin_client: Client,
                                                          blocking_dependant: list[str]) -> None:
    connection = make_github()
    page = admin_client.get(delete_url(connection)).content.decode()
    assert "MCP installations using gh-main: github-mcp" in page and "force-delete-link" in page
    admin_client.post(delete_url(connection), {"post": "yes"})
    assert Connection.objects.filter(pk=connection.pk).exists()

    forced = admin_client.get(delete_url(connection) + "?force=1").content.decode()
    assert "removed through their own app" in forced
    response = admin_client.post(delete_url(connection) + "?force=1", {"post": "yes"})
    assert response.status_code == 302
    assert not Connection.objects.exists()
    assert blocking_dependant == ["gh-main"]
    assert AuditEvent.objects.get(action="connection.delete").details["forced"] is True


def test_delete_refused_by_service_shows_error_and_keeps_log_clean(admin_client: Client,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    connection = make_github()
    from synthorg.errors import Conflict

    def refuse(**kwargs: Any) -> None:
        raise Conflict("refused for the test", code="connection_has_dependants")

    monkeypatch.setattr(services, "connection_delete", refuse)
    response = admin_client.post(delete_url(connection), {"post": "yes"}, follow=True)
    assert "refused for the test" in response.content.decode().lower()
    assert Connection.objects.filter(pk=connection.pk).exists()
    assert not LogEntry.objects.filter(action_flag=3).exists()


def test_bulk_delete_goes_through_service(admin_client: Client) -> None:
    first, second = make_github("gh-a"), make_github("gh-b")
    response = admin_client.post(LIST_URL, {"action": "delete_selected", "_selected_action": [first.pk, second.pk],
                                            "post": "yes"})
    assert response.status_code == 302
    assert not Connection.objects.exists()
    assert sorted(AuditEvent.objects.filter(action="connection.delete").values_list("target", flat=True)) == [
        "gh-a", "gh-b"]


def test_bulk_delete_with_dependants_deletes_nothing(admin_client: Client, blocking_dependant: list[str]) -> None:
    first, second = make_github("gh-a"), make_github("gh-b")
    response = admin_client.post(LIST_URL, {"action": "delete_selected", "_selected_action": [first.pk, second.pk],
                                            "post": "yes"})
    assert "github-mcp" in response.content.decode()
    assert Connection.objects.count() == 2
    assert not AuditEvent.objects.filter(action="connection.delete").exists()


def test_bulk_delete_failure_midway_rolls_back_everything(admin_client: Client,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = make_github("gh-a"), make_github("gh-b")
    real_delete = services.connection_delete

    def delete_then_fail(*, name: str, **kwargs: Any) -> None:
        if name == "gh-b":
            from synthorg.errors import Conflict
            raise Conflict("gh-b is busy")
        real_delete(name=name, **kwargs)

    monkeypatch.setattr(services, "connection_delete", delete_then_fail)
    response = admin_client.post(LIST_URL, {"action": "delete_selected", "_selected_action": [first.pk, second.pk],
                                            "post": "yes"}, follow=True)
    assert "gh-b is busy" in response.content.decode().lower()
    assert Connection.objects.count() == 2
    assert not LogEntry.objects.filter(action_flag=3).exists()


@pytest.mark.django_db
def test_oauth_app_change_page_links_to_connect(client: Any, superuser: Any) -> None:
    from integrations import services

    connection = services.connection_create(name="idp-app", connection_type="oauth_app", credentials={
        "client_id": "c", "client_secret": "s", "token_url": "https://idp.example.com/token",
        "auth_url": "https://idp.example.com/authorize"})
    client.force_login(superuser)
    html = client.get(f"/admin/integrations/connection/{connection.pk}/change/").content.decode()
    assert 'href="/admin/oauthflow/oauthtoken/connect/idp-app/"' in html

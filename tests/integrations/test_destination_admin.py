"""The admin form and `manage.py connections update` follow the destination rule (issue 12):
the service enforces it, the form shows the secret inputs as required, the command asks for
the secrets on stdin."""
from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from integrations import selectors, services
from integrations.models import Connection
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

TOKEN = "ghp_destination_admin_0001"


@pytest.fixture
def admin_client(superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def make_github() -> Connection:
    return services.connection_create(name="gh-main", connection_type="github",
                                      credentials={"token": TOKEN, "signing_secret": "sig-0001"})


def edit_post(connection: Connection, **overrides: Any) -> dict[str, Any]:
    data = {"field_api_url": connection.config.get("api_url", ""), "field_token": "", "field_signing_secret": "",
            "rate_limit_rpm": "0", "rate_limit_burst": "0", "rate_limit_max_concurrent": "0",
            "health_check_enabled": "on", "health_check_interval_seconds": "", "metadata": "{}"}
    data.update(overrides)
    return data


def change_url(connection: Connection) -> str:
    return reverse("admin:integrations_connection_change", args=[connection.pk])


def test_the_change_form_says_which_fields_need_the_secrets(admin_client: Client) -> None:
    body = admin_client.get(change_url(make_github())).content.decode()
    assert "Required again when you change api_url." in body
    assert "Changing this needs every stored secret entered again." in body
    assert TOKEN not in body


def test_admin_destination_change_without_secrets_marks_them_required(admin_client: Client) -> None:
    connection = make_github()
    response = admin_client.post(change_url(connection),
                                 edit_post(connection, field_api_url="http://127.0.0.2:9/api"))
    assert response.status_code == 200  # the form again, nothing saved
    form = response.context["adminform"].form
    assert "Required: changing api_url" in form.errors["field_token"][0]
    assert "Required: changing api_url" in form.errors["field_signing_secret"][0]
    assert form.fields["field_token"].required
    body = response.content.decode()
    assert TOKEN not in body and "sig-0001" not in body
    assert selectors.connection_get("gh-main").config["api_url"] == "https://api.github.com"
    event = AuditEvent.objects.get(action="connection.update")
    assert (event.outcome, event.reason) == ("denied", "secrets_required")


def test_admin_destination_change_with_the_secrets_saves(admin_client: Client) -> None:
    connection = make_github()
    response = admin_client.post(change_url(connection), edit_post(
        connection, field_api_url="https://ghe.example.com/api/v3", field_token="ghp_new_0002",
        clear_signing_secret="on"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    connection.refresh_from_db()
    assert connection.config["api_url"] == "https://ghe.example.com/api/v3"
    assert services.connection_secrets(connection) == {"token": "ghp_new_0002"}


# --- manage.py connections update -----------------------------------------------------------

def run(*args: str, stdin: str = "") -> str:
    out = io.StringIO()
    call_command("connections", *args, stdin=io.StringIO(stdin), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_command_update_refuses_a_move_without_the_secrets() -> None:
    make_github()
    with pytest.raises(CommandError) as caught:
        run("update", "gh-main", "--field", "api_url=https://ghe.example.com/api/v3", "--no-input")
    assert "token, signing_secret" in str(caught.value) and "stdin" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert selectors.connection_get("gh-main").config["api_url"] == "https://api.github.com"
    assert AuditEvent.objects.get(action="connection.update").reason == "secrets_required"


def test_command_update_moves_with_the_secrets_on_stdin() -> None:
    make_github()
    out = run("update", "gh-main", "--field", "api_url=https://ghe.example.com/api/v3", "--no-input",
              stdin='{"token": "ghp_new_0003", "signing_secret": "sig-0003"}')
    assert "Updated connection 'gh-main'" in out and "ghp_new_0003" not in out
    connection = selectors.connection_get("gh-main")
    assert connection.config["api_url"] == "https://ghe.example.com/api/v3"
    assert services.connection_secrets(connection) == {"token": "ghp_new_0003", "signing_secret": "sig-0003"}


def test_command_update_of_other_fields_needs_no_secret() -> None:
    services.connection_create(name="mail", connection_type="smtp",
                               credentials={"host": "mx.internal", "username": "u", "password": "pw-0004"})
    run("update", "mail", "--metadata", '{"team": "ops"}', "--no-input")
    assert selectors.connection_get("mail").metadata == {"team": "ops"}
    with pytest.raises(CommandError, match="password"):
        run("update", "mail", "--field", "use_tls=false", "--no-input")


def test_command_update_refuses_a_secret_on_the_command_line() -> None:
    make_github()
    with pytest.raises(CommandError, match="secret field"):
        run("update", "gh-main", "--field", "token=ghp_in_argv")

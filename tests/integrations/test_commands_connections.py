"""`manage.py connections list|show|create|delete`: secrets from a prompt or stdin, never argv."""
from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations import dependants, services
from integrations.models import Connection, SecretRecord
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

TOKEN = "ghp_command_token_value_0001"


class TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str, stdin: io.StringIO | None = None) -> str:
    out = io.StringIO()
    call_command("connections", *args, stdout=out, stderr=io.StringIO(), stdin=stdin or io.StringIO(""))
    return out.getvalue()


def test_create_reads_secrets_from_stdin_json() -> None:
    output = run("create", "gh-main", "--type", "github", "--field", "api_url=https://ghe.example.com/api/v3",
                 stdin=io.StringIO(json.dumps({"token": TOKEN, "signing_secret": "whsec-cmd-1"})))
    connection = Connection.objects.get(name="gh-main")
    assert connection.config["api_url"] == "https://ghe.example.com/api/v3"
    assert services.connection_secrets(connection) == {"token": TOKEN, "signing_secret": "whsec-cmd-1"}
    assert "token, signing_secret" in output or "signing_secret, token" in output
    assert TOKEN not in output
    assert AuditEvent.objects.get(action="connection.create").actor_name == "manage.py connections"


def test_create_reads_secrets_from_stdin_lines() -> None:
    # use_tls=false with a password is only for a loopback relay (the password would go in clear).
    run("create", "mail", "--type", "smtp", "--field", "host=127.0.0.1", "--field", "port=2525",
        "--field", "use_tls=false", "--field", "username=bot",
        stdin=io.StringIO("# the relay password\npassword=p@ss=word with spaces\n"))
    connection = Connection.objects.get(name="mail")
    assert connection.config["port"] == 2525 and connection.config["use_tls"] is False
    assert services.connection_secrets(connection) == {"password": "p@ss=word with spaces"}


def test_create_prompts_for_secrets_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return TOKEN if prompt.startswith("token") else ""

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    run("create", "gh-main", "--type", "github", stdin=TtyInput(""))
    assert prompts == ["token (required): ", "signing_secret (optional, Enter to skip): "]
    assert services.connection_secrets(Connection.objects.get(name="gh-main")) == {"token": TOKEN}


def test_create_with_secret_in_argv_is_refused_without_echo() -> None:
    with pytest.raises(CommandError) as excinfo:
        run("create", "gh-main", "--type", "github", "--field", f"token={TOKEN}")
    assert "never read from the command line" in str(excinfo.value)
    assert TOKEN not in str(excinfo.value)
    assert not Connection.objects.exists()


def test_create_without_required_secret_names_the_field() -> None:
    with pytest.raises(CommandError, match=r"credentials\.token: is required"):
        run("create", "gh-main", "--type", "github", stdin=io.StringIO(""))
    assert not Connection.objects.exists() and not SecretRecord.objects.exists()


def test_create_with_non_secret_on_stdin_is_refused() -> None:
    with pytest.raises(CommandError, match="api_url not secret field"):
        run("create", "gh-main", "--type", "github", stdin=io.StringIO(f"token={TOKEN}\napi_url=https://x.example\n"))


def test_create_with_malformed_stdin_line_names_line_only() -> None:
    with pytest.raises(CommandError) as excinfo:
        run("create", "gh-main", "--type", "github", stdin=io.StringIO(TOKEN + "\n"))
    assert "line 1" in str(excinfo.value) and TOKEN not in str(excinfo.value)


def test_create_rule_broken_reports_field_and_writes_nothing() -> None:
    with pytest.raises(CommandError, match=r"credentials\.api_url: must use https"):
        run("create", "gh-main", "--type", "github", "--field", "api_url=http://api.example.com",
            stdin=io.StringIO(json.dumps({"token": TOKEN})))
    assert not Connection.objects.exists()


def test_create_with_bad_integer_field_is_refused() -> None:
    with pytest.raises(CommandError, match="port: must be an integer"):
        run("create", "mail", "--type", "smtp", "--field", "host=smtp.example.com", "--field", "port=abc")


def make(name: str, connection_type: str = "github", **credentials: Any) -> Connection:
    return services.connection_create(name=name, connection_type=connection_type,
                                      credentials=credentials or {"token": TOKEN})


def test_list_prints_table_and_filters_by_type() -> None:
    make("gh-a")
    make("chat", "slack", token="xoxb-cmd-1")
    table = run("list")
    assert "NAME" in table and "gh-a" in table and "chat" in table and "token" in table
    assert TOKEN not in table and "xoxb-cmd-1" not in table
    only_slack = run("list", "--type", "slack")
    assert "chat" in only_slack and "gh-a" not in only_slack
    assert [c["name"] for c in json.loads(run("list", "--json"))] == ["chat", "gh-a"]


def test_list_empty_says_so() -> None:
    assert run("list").strip() == "No connections."


def test_show_prints_config_and_secret_names_only(settings: Any) -> None:
    settings.SYNTHORG_PUBLIC_URL = "https://hooks.example.com"
    make("gh-a", token=TOKEN, signing_secret="whsec-show-1")
    output = run("show", "GH-A")
    data = json.loads(output)
    assert data["config"] == {"api_url": "https://api.github.com"}
    assert sorted(data["secret_fields"]) == ["signing_secret", "token"]
    assert data["webhook_url"] == "https://hooks.example.com/api/v1/webhooks/gh-a/auto"
    assert TOKEN not in output and "whsec-show-1" not in output


def test_show_unknown_connection_fails() -> None:
    with pytest.raises(CommandError, match="No connection named 'nope'"):
        run("show", "nope")


def test_delete_removes_with_secrets_and_audits() -> None:
    make("gh-a")
    output = run("delete", "gh-a")
    assert "Deleted connection 'gh-a'" in output
    assert not Connection.objects.exists() and not SecretRecord.objects.exists()
    assert AuditEvent.objects.get(action="connection.delete").actor_name == "manage.py connections"


def test_delete_with_dependants_needs_force(monkeypatch: pytest.MonkeyPatch) -> None:
    removed: list[str] = []
    monkeypatch.setitem(dependants._registry, "test-providers", dependants.Dependant(
        label="provider configs", list_names=lambda c: [] if removed else ["claude"],
        remove=lambda c, **kwargs: removed.append(c.name)))
    make("gh-a")
    with pytest.raises(CommandError, match="provider configs: claude"):
        run("delete", "gh-a")
    assert Connection.objects.exists()
    run("delete", "gh-a", "--force")
    assert removed == ["gh-a"] and not Connection.objects.exists()


def test_delete_unknown_connection_fails() -> None:
    with pytest.raises(CommandError, match="No connection named"):
        run("delete", "nope")


@pytest.mark.django_db
def test_connections_check_probes_now_and_fails_on_unhealthy(capsys: Any) -> None:
    # generic_http against a port where nothing listens: the check fails, the command exits non-zero.
    from integrations import services

    services.connection_create(name="dead-api", connection_type="generic_http",
                               credentials={"base_url": "http://127.0.0.1:9/"})
    with pytest.raises(CommandError):
        call_command("connections", "check", "dead-api")
    assert "dead-api" in capsys.readouterr().out

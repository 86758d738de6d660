"""`manage.py notifications`: the same services as the API."""
from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from notifications.models import NotificationSink, Problem
from tests.notifications.conftest import http_connection, unhealthy
from tests.peers.http_peer import Reply

pytestmark = pytest.mark.django_db


def run(*args: str, stdin: str = "", monkeypatch: Any = None) -> str:
    out = io.StringIO()
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command("notifications", *args, stdout=out)
    return out.getvalue()


def test_add_list_and_test_a_sink(http_peer: Any) -> None:
    http_connection(http_peer.url("/hook"), name="receiver")
    http_peer.script("/hook", Reply(200))
    created = run("add-sink", "hook", "--kind", "webhook", "--connection", "receiver")
    assert "signing_secret (shown once" in created and "whsec_" in created
    assert "hook\twebhook\treceiver\tenabled" in run("sinks")
    assert "sent" in run("test", "hook")
    assert "whsec_" not in run("sinks")


def test_a_failing_test_alert_is_an_error(http_peer: Any) -> None:
    http_connection(http_peer.url("/status/500"), name="receiver")
    run("add-sink", "hook", "--kind", "webhook", "--connection", "receiver")
    with pytest.raises(CommandError, match="failed"):
        run("test", "hook")


def test_secrets_come_from_stdin(monkeypatch: Any) -> None:
    url = "https://hooks.slack.com/services/T0/B0/abcdef"
    run("add-sink", "slack", "--kind", "slack_webhook", "--secrets-from-stdin",
        stdin=f'{{"webhook_url": "{url}"}}', monkeypatch=monkeypatch)
    assert url not in NotificationSink.objects.get().secret_ciphertext


def test_bad_input_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="connection"):
        run("add-sink", "m", "--kind", "email", "--settings", '{"to": ["a@example.com"]}')
    assert not NotificationSink.objects.exists()


def test_problems_and_ack() -> None:
    unhealthy(http_connection("http://127.0.0.1:9/x", name="watched"))
    problem = Problem.objects.get()
    assert "Connection watched is unhealthy" in run("problems")
    assert "acknowledged" in run("ack", str(problem.pk))
    assert "acknowledged by manage.py notifications" in run("problems")

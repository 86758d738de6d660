"""Adding sinks in the console (through `services.sink_create`): a webhook sink's generated whsec_
secret is on the page after saving exactly once, and nowhere afterwards (change page, messages,
logs, audit, admin LogEntry); the add control needs notifications.add_notificationsink."""
from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from notifications import secrets as sink_secrets
from notifications.models import NotificationSink
from synthorg.models import AuditEvent
from tests.notifications.conftest import http_connection, smtp_connection

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:notifications_notificationsink_add")
LIST_URL = reverse("admin:notifications_notificationsink_changelist")
ADDER = ("notifications.view_notificationsink", "notifications.add_notificationsink")


def form(**values: Any) -> dict[str, Any]:
    return {"name": "ops", "kind": "email", "connection": "", "settings": "{}", "enabled": "on",
            "webhook_url": "", "_save": "Save", **values}


def test_add_webhook_sink_shows_the_secret_once_and_never_again(console: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = http_connection("http://127.0.0.1:9/hook", name="receiver")
    client = console(*ADDER, "notifications.change_notificationsink")
    response = client.post(ADD_URL, form(name="hook", kind="webhook", connection=str(receiver.pk)))
    assert response.status_code == 200, response.content.decode()[:2000]
    sink = NotificationSink.objects.get(name="hook")
    secret = sink_secrets.sink_secrets_read(sink)["signing_secret"]
    assert secret.startswith("whsec_")
    html = response.content.decode()
    assert html.count(secret) == 1  # shown once; the copy button reads it from the page
    assert 'data-copy-from="#sink-secret-1"' in html
    assert reverse("admin:notifications_notificationsink_change", args=[sink.pk]) in html
    assert "no-store" in response["Cache-Control"]
    # Not carried anywhere else: no message cookie, the change page, logs, audit, the admin log.
    assert secret not in str(client.cookies) and secret not in str(dict(client.session))
    change = client.get(reverse("admin:notifications_notificationsink_change", args=[sink.pk]))
    assert change.status_code == 200 and secret not in change.content.decode()
    assert secret not in client.get(LIST_URL).content.decode()
    assert secret not in caplog.text
    audit = AuditEvent.objects.filter(action="notifications.sink_create")
    assert audit.count() == 1 and secret not in json.dumps(list(audit.values()), default=str)
    assert secret not in json.dumps(list(LogEntry.objects.values()), default=str)


def test_add_email_sink_redirects_like_any_add(console: Any, mail_peer: Any) -> None:
    relay = smtp_connection(mail_peer.port)
    client = console(*ADDER)
    response = client.post(ADD_URL, form(connection=str(relay.pk),
                                         settings=json.dumps({"to": ["ops@example.com"]})))
    assert response.status_code == 302, response.content.decode()[:2000]
    sink = NotificationSink.objects.get(name="ops")
    assert sink.kind == "email" and sink.connection == relay and sink.settings == {"to": ["ops@example.com"]}
    assert AuditEvent.objects.filter(action="notifications.sink_create", target="ops").exists()


def test_service_rules_are_form_errors_and_nothing_is_stored(console: Any, mail_peer: Any) -> None:
    relay = smtp_connection(mail_peer.port)
    client = console(*ADDER)
    response = client.post(ADD_URL, form(kind="webhook", connection=str(relay.pk)))  # an smtp connection
    assert response.status_code == 200
    assert "errornote" in response.content.decode()
    assert not NotificationSink.objects.exists()


def test_slack_webhook_url_is_a_secret_never_rendered(console: Any) -> None:
    client = console(*ADDER)
    url = "https://hooks.slack.com/services/T000/B000/SECRETPATH123"
    response = client.post(ADD_URL, form(name="slack-hook", kind="slack_webhook", webhook_url=url))
    assert response.status_code == 302, response.content.decode()[:2000]
    sink = NotificationSink.objects.get(name="slack-hook")
    assert sink_secrets.sink_secrets_read(sink) == {"webhook_url": url}
    assert "SECRETPATH123" not in client.get(response["Location"]).content.decode()


def test_without_the_add_permission_no_button_and_403(console: Any) -> None:
    receiver = http_connection("http://127.0.0.1:9/hook", name="receiver")
    viewer = console("notifications.view_notificationsink", "notifications.change_notificationsink")
    assert ADD_URL not in viewer.get(LIST_URL).content.decode()
    assert viewer.get(ADD_URL).status_code == 403
    assert viewer.post(ADD_URL, form(name="hook", kind="webhook", connection=str(receiver.pk))).status_code == 403
    assert not NotificationSink.objects.exists()
    adder = console(*ADDER)
    assert ADD_URL in adder.get(LIST_URL).content.decode()
    assert adder.post_without_token(ADD_URL, form(name="hook", kind="webhook",
                                                  connection=str(receiver.pk))).status_code == 403  # CSRF
    assert not NotificationSink.objects.exists()

"""Notification sinks' own secrets (a webhook sink's whsec_ key, a Slack incoming-webhook URL) go
through the configured secret manager like every other secret: the database keeps a reference to
``<prefix>/notification-sinks/<id>`` and no secret material, a test alert is still signed with the
key shown at creation (checked with the `standardwebhooks` library), deleting the sink destroys
the secret (a failure is retried), `secrets_migrate` moves it both ways, and the master-key
rotation and `fernet_secrets_left` see the sink column."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from integrations import services as connections
from integrations.checks import fernet_secrets_left
from integrations.models import MigratedSecretSource, PendingSecretDeletion
from integrations.secrets import managed, rotation
from integrations.secrets.base import SecretBackendUnavailable, SecretUnavailable
from notifications import services
from notifications.models import NotificationSink
from synthorg.models import AuditEvent
from tests.admin_console.conftest import console, root_console  # noqa: F401  (the console fixtures)
from tests.peers.http_peer import HttpPeer, Reply
from tests.secret_backends.conftest import manager_read
from tests.secret_backends.test_connections import database_text

pytestmark = pytest.mark.django_db
SLACK_URL = "https://hooks.slack.com/services/T000/B000/CANARYsinkurl7c1"


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    with HttpPeer() as peer:
        yield peer


def webhook_sink(peer: HttpPeer, name: str = "hook") -> tuple[NotificationSink, str]:
    connections.connection_create(name=f"{name}-receiver", connection_type="generic_http",
                                  credentials={"base_url": peer.url("/hook"), "token": "receiver-token-123"})
    created = services.sink_create(name=name, kind="webhook", connection=f"{name}-receiver")
    return created.sink, created.shown_once["signing_secret"]


def assert_test_alert_signed(peer: HttpPeer, sink: NotificationSink, secret: str) -> None:
    peer.script("/hook", Reply(204))
    outcome = services.sink_test(sink_id=sink.pk)
    assert outcome.result == "sent", outcome.error
    received = peer.received[-1]
    headers = {k.lower(): v for k, v in received.headers.items()}
    event = Webhook(secret).verify(received.body, headers)  # raises on a bad signature
    assert event["type"] == "test" and event["id"] == outcome.alert_id == headers["webhook-id"]


def no_secret_in_database(*secrets: str) -> None:
    text = database_text()
    for secret in secrets:
        assert secret not in text
        if secret.startswith("whsec_"):
            assert secret.removeprefix("whsec_") not in text


def test_sink_secrets_live_in_the_manager_and_die_with_the_sink(
    secret_backend: str, http_peer: HttpPeer, django_capture_on_commit_callbacks: Any,
) -> None:
    sink, secret = webhook_sink(http_peer)
    slack = services.sink_create(name="ops", kind="slack_webhook", secrets={"webhook_url": SLACK_URL}).sink
    for row, values in ((sink, {"signing_secret": secret}), (slack, {"webhook_url": SLACK_URL})):
        stored = NotificationSink.objects.get(pk=row.pk)
        assert stored.secret_ciphertext.startswith(f"ref:{secret_backend}:") and stored.secret_key_id == ""
        assert manager_read(secret_backend, managed.NOTIFICATION_SINKS, row.pk) == values
    no_secret_in_database(secret, SLACK_URL)

    # Signed with the key shown at creation, read through the per-process cache: a second alert
    # does not ask the manager again.
    assert_test_alert_signed(http_peer, NotificationSink.objects.get(pk=sink.pk), secret)
    before = managed.reads[secret_backend]
    assert_test_alert_signed(http_peer, NotificationSink.objects.get(pk=sink.pk), secret)
    assert managed.reads[secret_backend] == before
    # A changed Slack URL is a new version of the same secret; the reference follows it.
    old_ref = NotificationSink.objects.get(pk=slack.pk).secret_ciphertext
    services.sink_update(sink_id=slack.pk, data={"secrets": {"webhook_url": SLACK_URL + "b"}})
    new_ref = NotificationSink.objects.get(pk=slack.pk).secret_ciphertext
    assert new_ref != old_ref and managed.parse(new_ref).location == managed.parse(old_ref).location
    assert managed.unseal(new_ref) == {"webhook_url": SLACK_URL + "b"}
    no_secret_in_database(secret, SLACK_URL)

    # A sink outlives its connection (SET_NULL): the connection's delete leaves the sink's secret.
    with django_capture_on_commit_callbacks(execute=True):
        connections.connection_delete(name="hook-receiver")
    assert manager_read(secret_backend, managed.NOTIFICATION_SINKS, sink.pk) == {"signing_secret": secret}

    for row in (sink, slack):
        with django_capture_on_commit_callbacks(execute=True):
            services.sink_delete(sink_id=row.pk)
        with pytest.raises(SecretUnavailable):
            manager_read(secret_backend, managed.NOTIFICATION_SINKS, row.pk)
        assert AuditEvent.objects.filter(action="secret.destroy", target=f"notification-sinks/{row.pk}",
                                         outcome="success").exists()
    assert not PendingSecretDeletion.objects.exists()


def test_a_failed_destroy_is_retried(
    secret_backend: str, http_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sink, _ = webhook_sink(http_peer)
    found = managed.manager(secret_backend)

    def down(location: str) -> None:
        raise SecretBackendUnavailable()

    monkeypatch.setattr(found, "destroy", down)
    with django_capture_on_commit_callbacks(execute=True):
        services.sink_delete(sink_id=sink.pk)
    assert not NotificationSink.objects.filter(pk=sink.pk).exists()  # the row is gone regardless
    pending = PendingSecretDeletion.objects.get()
    assert pending.owner == f"notification-sinks/{sink.pk}"
    assert manager_read(secret_backend, managed.NOTIFICATION_SINKS, sink.pk)  # still there

    monkeypatch.undo()
    PendingSecretDeletion.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert managed.pending_deletions_retry() == {"destroyed": 1, "failed": 0}
    with pytest.raises(SecretUnavailable):
        manager_read(secret_backend, managed.NOTIFICATION_SINKS, sink.pk)


def test_a_backend_outage_on_create_stores_nothing(
    secret_backend: str, http_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise SecretBackendUnavailable()

    monkeypatch.setattr(managed, "write", down)
    with pytest.raises(SecretBackendUnavailable):
        services.sink_create(name="ops", kind="slack_webhook", secrets={"webhook_url": SLACK_URL})
    assert not NotificationSink.objects.exists()


def test_deleting_sinks_in_the_console_destroys_their_secrets(
    secret_backend: str, http_peer: HttpPeer, root_console: Any,  # noqa: F811  (the imported fixture)
    django_capture_on_commit_callbacks: Any,
) -> None:
    one, _ = webhook_sink(http_peer, "one")
    two, _ = webhook_sink(http_peer, "two")
    with django_capture_on_commit_callbacks(execute=True):
        deleted = root_console.post(reverse("admin:notifications_notificationsink_delete", args=[one.pk]),
                                    {"post": "yes"})
    assert deleted.status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        bulk = root_console.post(reverse("admin:notifications_notificationsink_changelist"),
                                 {"action": "delete_selected", "_selected_action": [two.pk], "post": "yes"})
    assert bulk.status_code == 302
    assert not NotificationSink.objects.exists()
    for row in (one, two):
        with pytest.raises(SecretUnavailable):
            manager_read(secret_backend, managed.NOTIFICATION_SINKS, row.pk)


def test_an_alert_waits_while_the_manager_is_down(
    secret_backend: str, http_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink, secret = webhook_sink(http_peer)
    managed.cache_clear()
    found = managed.manager(secret_backend)

    def down(*args: Any, **kwargs: Any) -> None:
        raise SecretBackendUnavailable()

    monkeypatch.setattr(found, "read", down)
    outcome = services.sink_test(sink_id=sink.pk)  # one attempt, answered: a transient failure
    assert outcome.result == "failed" and "secret backend unavailable" in outcome.error
    assert not http_peer.received
    monkeypatch.undo()
    assert_test_alert_signed(http_peer, NotificationSink.objects.get(pk=sink.pk), secret)


def migrate_to(target: str, *args: str) -> str:
    out = StringIO()
    call_command("secrets_migrate", "--to", target, *args, stdout=out)
    return out.getvalue()


def test_secrets_migrate_moves_sink_secrets_both_ways(
    secret_backend: str, http_peer: HttpPeer, integrations_config: Any, monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.conf import settings

    managed_config = settings.SYNTHORG_CONFIG_OVERRIDES
    integrations_config({**managed_config, "secret_backend": {**managed_config["secret_backend"],
                                                              "backend_type": "encrypted_sqlite"}})
    # A Slack webhook sink alone (no connection) is a Fernet secret the master key is needed for.
    slack = services.sink_create(name="ops", kind="slack_webhook", secrets={"webhook_url": SLACK_URL}).sink
    assert fernet_secrets_left()
    sink, secret = webhook_sink(http_peer)
    assert NotificationSink.objects.get(pk=sink.pk).secret_ciphertext.startswith("gAAAAA")

    # The master-key rotation re-encrypts a sink's Fernet token, and only that.
    old_key, new_key = os.environ["SYNTHORG_MASTER_KEY"], Fernet.generate_key().decode()
    monkeypatch.setenv("SYNTHORG_PREVIOUS_MASTER_KEYS", old_key)
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", new_key)
    counts = rotation.hooks()["notifications"](actor=None)
    assert (counts.rotated, counts.failed) == (2, 0)
    stored = NotificationSink.objects.get(pk=sink.pk).secret_ciphertext
    assert json.loads(Fernet(new_key.encode()).decrypt(stored.encode())) == {"signing_secret": secret}

    migrate_to(secret_backend)
    for row, values in ((sink, {"signing_secret": secret}), (slack, {"webhook_url": SLACK_URL})):
        assert NotificationSink.objects.get(pk=row.pk).secret_ciphertext.startswith(f"ref:{secret_backend}:")
        assert manager_read(secret_backend, managed.NOTIFICATION_SINKS, row.pk) == values
    assert not fernet_secrets_left()
    no_secret_in_database(secret, SLACK_URL)
    assert_test_alert_signed(http_peer, NotificationSink.objects.get(pk=sink.pk), secret)
    # Nothing left for the master key in the sinks' column; a second run moves nothing.
    counts = rotation.hooks()["notifications"](actor=None)
    assert (counts.rotated, counts.already_current, counts.failed) == (0, 0, 0)
    assert "moved: 0" in migrate_to(secret_backend)

    with django_capture_on_commit_callbacks(execute=True):
        migrate_to("encrypted_sqlite", "--purge-source")
    assert NotificationSink.objects.get(pk=sink.pk).secret_ciphertext.startswith("gAAAAA")
    for row in (sink, slack):
        with pytest.raises(SecretUnavailable):  # --purge-source destroyed the manager's copy
            manager_read(secret_backend, managed.NOTIFICATION_SINKS, row.pk)
    assert not MigratedSecretSource.objects.exists()
    assert_test_alert_signed(http_peer, NotificationSink.objects.get(pk=sink.pk), secret)

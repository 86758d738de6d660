"""integrations.generation: every committed change to connection data sets a new stamp in Redis,
so the receiver's per-process connection cache never outlives a change."""
from __future__ import annotations

import logging
import socket
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from integrations import generation
from integrations.models import Connection, SecretRecord
from integrations.secrets import fernet
from tests.webhooks.receiving import make_github
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


def stamp(client: Any) -> bytes | None:
    return client.get(generation.generation_key())


def closed_port() -> int:
    # Bound then released: nothing listens there for the rest of the test.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_key_carries_the_run_prefix(settings: Any) -> None:
    assert generation.generation_key() == f"{settings.REDIS_KEY_PREFIX}connections:generation"
    assert generation.fresh_stamp() != generation.fresh_stamp()


def test_creating_and_saving_a_connection_bumps_the_stamp(redis_client: Any) -> None:
    before = stamp(redis_client)
    connection = make_github()
    created = stamp(redis_client)
    assert created is not None and created != before
    connection.config = {**connection.config, "note": "changed"}
    connection.save()
    assert stamp(redis_client) not in (None, created)


def test_a_health_only_save_does_not_bump_it(redis_client: Any) -> None:
    connection = make_github()
    before = stamp(redis_client)
    connection.health_status = Connection.HealthStatus.HEALTHY
    connection.health_checked_at = timezone.now()
    connection.health_consecutive_failures = 0
    connection.save(update_fields=["health_status", "health_checked_at", "health_consecutive_failures",
                                   "updated_at"])
    assert stamp(redis_client) == before
    # One field a cached copy reads, among health fields, is a change.
    connection.config = {"repo": "octo/cat"}
    connection.save(update_fields=["health_status", "config"])
    assert stamp(redis_client) != before


def test_deleting_a_connection_bumps_the_stamp(redis_client: Any) -> None:
    # No secret record: a cascade to one would bump the stamp by itself.
    connection = Connection.objects.create(name="bare", connection_type="github",
                                           secret_backend=fernet.EncryptedDatabaseBackend.name)
    before = stamp(redis_client)
    connection.delete()
    assert stamp(redis_client) != before


def test_secret_record_save_bumps_the_stamp(redis_client: Any) -> None:
    connection = make_github()
    record = SecretRecord.objects.get(pk=connection.secret_id)
    before = stamp(redis_client)
    record.ciphertext, record.key_id = fernet.encrypt({"token": "t", "signing_secret": "new-secret"})
    record.save()
    assert stamp(redis_client) != before


def test_webhook_endpoint_save_and_delete_bump_the_stamp(redis_client: Any) -> None:
    connection = make_github()
    before = stamp(redis_client)
    endpoint = WebhookEndpoint.objects.create(connection=connection,
                                              previous_valid_until=timezone.now() + timedelta(hours=1))
    created = stamp(redis_client)
    assert created != before
    endpoint.delete()
    assert stamp(redis_client) != created


def test_bulk_update_announces_nothing(redis_client: Any) -> None:
    # Documented: update() sends no signal, so its callers must call connections_changed().
    connection = make_github()
    before = stamp(redis_client)
    Connection.objects.filter(pk=connection.pk).update(config={"bulk": True})
    assert stamp(redis_client) == before


def test_connections_changed_bumps_at_once_and_again_on_commit(
        redis_client: Any, django_capture_on_commit_callbacks: Any) -> None:
    first = stamp(redis_client)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            generation.connections_changed()
            inside = stamp(redis_client)
            assert inside is not None and inside != first
        # The test's own transaction is still open: the commit callback has not run yet.
        assert stamp(redis_client) == inside
    assert len(callbacks) == 1
    after_commit = stamp(redis_client)
    assert after_commit is not None and after_commit != inside


def test_rolled_back_change_still_announced_once_but_not_on_commit(
        redis_client: Any, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            generation.connections_changed()
            raise RuntimeError("rolled back")
    assert callbacks == []


def test_without_redis_it_is_a_no_op(settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    # Read the shared server (when there is one) through a client of our own: the stamp stays.
    client = redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    before = stamp(client) if client is not None else None
    settings.REDIS_URL = ""
    with django_capture_on_commit_callbacks(execute=True):
        generation.connections_changed()
        make_github()  # the signal handlers run without a Redis client and raise nothing
    if client is not None:
        assert stamp(client) == before


def test_unreachable_redis_is_logged_not_raised(settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    with caplog.at_level(logging.WARNING, logger="integrations.generation"):
        generation.connections_changed()
    assert "could not announce a connection change" in caplog.text

"""The delivery table has no foreign-key constraint (issue 15 §7: PostgreSQL's check locked the
connection's row on every insert); deliveries still leave with their connection."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from integrations import services as connection_services
from tests.webhooks.receiving import github_body, github_headers, make_github, post
from webhooks import receiver, services
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db


def store(connection_id: int, n: int) -> int:
    """A delivery row as the receiver stores it, for any connection id (none need exist)."""
    delivery_id = receiver._delivery_insert.run({
        "connection_id": connection_id, "connection_name": "gone", "connection_type": "github",
        "event_type": "push", "event_name": "push", "path_event_type": "push", "provider_delivery_id": "",
        "replay_key": uuid.uuid4().hex, "signed_timestamp": None, "matched_secret": "current",
        "outcome": Delivery.Outcome.ACCEPTED, "headers": {}, "content_type": "application/json",
        "body": github_body(n), "payload": {"n": n}, "payload_escaped": False, "remote_ip": None,
        "received_at": timezone.now()})
    assert delivery_id is not None
    return delivery_id


def test_the_database_holds_no_foreign_key_from_deliveries_to_connections() -> None:
    with db_connection.cursor() as cursor:
        constraints = db_connection.introspection.get_constraints(cursor, Delivery._meta.db_table)
    assert not [name for name, info in constraints.items() if info["foreign_key"]]


def test_deleting_a_connection_deletes_its_deliveries(client: Any) -> None:
    make_github()
    body = github_body(1)
    assert post(client, "gh", "push", body, github_headers(body)).status_code == 202
    assert Delivery.objects.count() == 1
    connection_services.connection_delete(name="gh", force=True)
    assert not Delivery.objects.exists()


def test_a_delivery_stored_while_its_connection_was_deleted_goes_after_the_commit(
        django_capture_on_commit_callbacks: Any) -> None:
    gh = make_github()
    kept = make_github(name="other")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        connection_services.connection_delete(name="gh", force=True)
        # A request that verified against its cached copy stores its row just before the commit.
        late = store(gh.pk, 2)
        other = store(kept.pk, 3)
        assert Delivery.objects.filter(pk=late).exists()
    assert callbacks
    assert not Delivery.objects.filter(pk=late).exists()
    assert Delivery.objects.filter(pk=other).exists()  # another connection's delivery stays


def test_the_prune_task_removes_orphans_that_slipped_through() -> None:
    kept = make_github()
    orphan = store(kept.pk + 1000, 4)
    mine = store(kept.pk, 5)
    result = services.deliveries_prune()
    assert result["orphans"] == 1
    assert not Delivery.objects.filter(pk=orphan).exists()
    assert Delivery.objects.filter(pk=mine).exists()
    assert services.deliveries_prune()["orphans"] == 0


def test_orphans_of_one_connection_only() -> None:
    kept = make_github()
    first, second = store(kept.pk + 1000, 6), store(kept.pk + 2000, 7)
    assert services.deliveries_orphaned_delete(connection_id=kept.pk + 1000) == 1
    assert not Delivery.objects.filter(pk=first).exists() and Delivery.objects.filter(pk=second).exists()


def test_a_sweep_that_fails_after_the_delete_committed_does_not_fail_the_delete(
        django_capture_on_commit_callbacks: Any) -> None:
    from unittest import mock

    from django.db import OperationalError

    gh = make_github()
    with mock.patch.object(services, "deliveries_orphaned_delete", side_effect=OperationalError("gone")), \
            django_capture_on_commit_callbacks(execute=True) as callbacks:
        connection_services.connection_delete(name="gh", force=True)
    assert callbacks
    assert not type(gh).objects.filter(pk=gh.pk).exists()

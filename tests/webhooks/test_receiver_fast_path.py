"""The receiver's fast path: with Redis, an accepted delivery costs one statement (the insert;
the connection comes from the per-process cache validated by the gate's generation stamp),
without Redis one read and one insert; the publication is queued only after the insert is
committed; a duplicate is refused by the unique constraint, not by an error; and secrets are
never stale across processes even though connections and decryptions are cached."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
from django.conf import settings
from django.db import connection as db_connection
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations import services as connection_services
from tests.webhooks import processes
from tests.webhooks.receiving import GITHUB_SECRET, github_body, github_headers, make_github, post
from webhooks import receiver
from webhooks import services as webhook_services
from webhooks.models import Delivery


def statements(context: CaptureQueriesContext) -> list[str]:
    """The receiver's own statements: without Redis (SQLite runs) the rate limiter keeps its
    buckets in the database, and those queries belong to the limiter's store, not the receiver."""
    return [q["sql"] for q in context.captured_queries
            if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))
            and "integrations_ratelimitbucket" not in q["sql"]]


@pytest.mark.django_db(transaction=True)
def test_accepted_delivery_costs_one_insert_and_queues_after_the_commit() -> None:
    make_github()
    post(Client(), "gh", "auto", github_body(0), github_headers(github_body(0)))  # warm: connection cached
    enqueued: list[tuple[int, bool]] = []

    def enqueue(delivery_ids: list[int]) -> bool:
        # Runs after the commit: outside any transaction, the row already stored.
        enqueued.extend((delivery_id, db_connection.in_atomic_block) for delivery_id in delivery_ids)
        return True

    body = github_body(1)
    with mock.patch("webhooks.dispatcher.send_batch", side_effect=enqueue), \
            CaptureQueriesContext(db_connection) as context:
        response = post(Client(), "gh", "auto", body, github_headers(body, event="push"))
    assert response.status_code == 202
    sql = statements(context)
    if settings.REDIS_URL:
        assert len(sql) == 1, sql  # the connection came from the cache
    else:
        # Without Redis: no generation stamp (the connection is read every time), and the
        # database limiter is taken after a duplicate check, so a duplicate spends nothing.
        assert len(sql) == 3, [q[:120] for q in sql]
        assert sql[0].upper().startswith("SELECT") and sql[1].upper().startswith("SELECT")
    assert sql[-1].upper().startswith("INSERT")
    assert enqueued == [(response.json()["delivery_id"], False)]


@pytest.mark.django_db(transaction=True)
def test_duplicate_is_refused_by_the_unique_constraint_without_an_error() -> None:
    make_github()
    body = github_body(2)
    first = post(Client(), "gh", "auto", body, github_headers(body))
    with CaptureQueriesContext(db_connection) as context:
        again = post(Client(), "gh", "auto", body, github_headers(body, delivery="redelivery"))
    assert again.status_code == 200 and again.json() == {"status": "duplicate",
                                                         "delivery_id": first.json()["delivery_id"]}
    inserts = [q for q in statements(context) if q.upper().startswith(("INSERT INTO \"WEBHOOKS_DELIVERY\"", "INSERT OR IGNORE"))]
    if settings.REDIS_URL:
        # One insert, refused quietly (ON CONFLICT DO NOTHING): no IntegrityError, no error logged.
        assert len(inserts) == 1 and "ON CONFLICT DO NOTHING" in inserts[0]
    else:
        assert inserts == []  # found by the look-up that comes before the database limiter
    assert Delivery.objects.count() == 1
    assert Delivery.objects.get().duplicates == 1


@pytest.mark.django_db
def test_delivery_store_returns_none_for_a_duplicate_and_queues_nothing() -> None:
    connection = make_github()
    values = {"connection_id": connection.pk, "connection_name": "gh", "connection_type": "github",
              "event_type": "push", "path_event_type": "push", "replay_key": "k" * 64, "body": b"{}",
              "payload": {}, "received_at": timezone.now()}
    with mock.patch("webhooks.receiver.publication_submit") as submit:
        first = receiver.delivery_store(values)
        second = receiver.delivery_store(values)
    assert first is not None and second is None
    stored = Delivery.objects.get()
    assert stored.pk == first and stored.event_id.version == 7 and stored.publish_state == "pending"
    assert stored.outcome == "accepted" and stored.payload == {} and bytes(stored.body) == b"{}"
    assert stored.received_at == values["received_at"] and stored.duplicates == 0
    # Inside the test's transaction the publication waits for the commit that never comes.
    submit.assert_not_called()


@pytest.mark.django_db
def test_unknown_and_impossible_names_read_nothing_and_get_the_uniform_401() -> None:
    body = github_body(3)
    response = post(Client(), "nobody", "auto", body, github_headers(body))
    assert response.status_code == 401
    assert response.json() == dict(receiver.UNAUTHORIZED_BODY)
    # A NUL in the path is refused before routing (synthorg.middleware.NulCharacterMiddleware).
    assert post(Client(), "bad%00name", "auto", body, github_headers(body)).status_code == 404
    assert receiver.connection_for_receipt("bad\x00name") == (None, False)


@pytest.mark.django_db
def test_receipt_read_matches_the_selector_case_insensitively() -> None:
    make_github(name="Mixed.Case")
    found, cached = receiver.connection_for_receipt("mixed.case")
    assert found is not None and found.name == "Mixed.Case" and not cached
    assert found.secret_ciphertext and found.previous_secret_ciphertext is None


@pytest.mark.django_db
def test_previous_secret_read_with_the_row_is_used_only_inside_its_grace() -> None:
    connection = make_github()
    webhook_services.signing_secret_rotate(name="gh", secret="the-second-secret-value",
                                           previous_valid_until=timezone.now() + timedelta(hours=1))
    found, _cached = receiver.connection_for_receipt("gh")
    assert found.pk == connection.pk and found.previous_secret_ciphertext
    assert receiver.signing_secrets(found, timezone.now()) == [b"the-second-secret-value", GITHUB_SECRET.encode()]
    # The same (cached) copy stops offering the previous secret once its grace is over.
    later = timezone.now() + timedelta(hours=2)
    assert receiver.signing_secrets(found, later) == [b"the-second-secret-value", b""]


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_secret_changes_made_by_another_process_apply_to_the_next_delivery(tmp_path: Path) -> None:
    make_github()
    env = processes.service_env(tmp_path, settings.REDIS_URL, flood_rpm_per_ip=0)
    web, base = processes.web(env, tmp_path, "web-secrets")
    counter = iter(range(100, 200))

    def send(secret: str) -> Any:
        body = json.dumps({"n": next(counter), "action": "opened"}).encode()
        return requests.post(f"{base}/api/v1/webhooks/gh/auto", data=body, timeout=30,
                             headers={**github_headers(body, secret=secret), "Content-Type": "application/json"})

    try:
        assert send(GITHUB_SECRET).status_code == 202  # the web process has now decrypted (and cached) it
        webhook_services.signing_secret_rotate(name="gh", secret="second-secret-0123456789",
                                               previous_valid_until=timezone.now() + timedelta(hours=1))
        assert send(GITHUB_SECRET).status_code == 202  # previous, inside its grace
        assert send("second-secret-0123456789").status_code == 202
        connection_services.connection_update(name="gh", data={"credentials": {"signing_secret": "third-secret-0123"}})
        assert send("second-secret-0123456789").status_code == 401  # replaced without grace: refused at once
        assert send("third-secret-0123").status_code == 202
        connection_services.connection_delete(name="gh", force=True)
        assert send("third-secret-0123").status_code == 401
    finally:
        web.stop()
    assert list(Delivery.objects.values_list("matched_secret", flat=True).order_by("pk")) == []  # deleted with it



@pytest.mark.django_db(transaction=True)
def test_a_dead_database_connection_is_replaced_without_a_health_check_query() -> None:
    if db_connection.vendor != "postgresql":
        pytest.skip("PostgreSQL: the server ends the session")
    make_github()
    client = Client()
    with mock.patch.object(type(connections["default"]), "is_usable", autospec=True,
                           side_effect=type(connections["default"]).is_usable) as is_usable:
        db_connection.health_check_done = False  # as at the start of a request
        assert post(client, "gh", "auto", github_body(10), github_headers(github_body(10))).status_code == 202
    assert is_usable.call_count == 0  # no SELECT 1 before the receiver's statements
    # Between requests the server drops this process's persistent connection (a restart, an
    # idle timeout). Django's per-request health check would notice; the receiver skips it.
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    import psycopg

    with psycopg.connect(_dsn(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    body = github_body(11)
    with mock.patch.object(type(connections["default"]), "is_usable", autospec=True,
                           side_effect=type(connections["default"]).is_usable) as is_usable:
        db_connection.health_check_done = False  # as at the start of the next request
        response = post(client, "gh", "auto", body, github_headers(body))
    assert response.status_code == 202, response.content
    assert is_usable.call_count == 1  # asked only after the statement failed
    assert Delivery.objects.filter(pk=response.json()["delivery_id"]).exists()


def _dsn() -> str:
    cfg = db_connection.settings_dict
    return (f"host={cfg['HOST'] or 'localhost'} port={cfg['PORT'] or 5432} dbname={cfg['NAME']} "
            f"user={cfg['USER']}" + (f" password={cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""))


@pytest.mark.django_db
def test_debug_error_page_from_inside_verification_shows_no_signing_secret(settings: Any) -> None:
    # `make run` runs with DEBUG, whose 500 page lists every frame's variables to the caller,
    # here an unauthenticated sender.
    from django.views.debug import get_default_exception_reporter_filter

    from webhooks.verifiers.github import GitHubHmacVerifier

    settings.DEBUG = True
    get_default_exception_reporter_filter.cache_clear()
    make_github()
    body = github_body(12)
    try:
        with mock.patch.object(GitHubHmacVerifier, "verify", autospec=True,
                               side_effect=RuntimeError("verifier broke")):
            response = post(Client(raise_request_exception=False), "gh", "auto", body, github_headers(body))
    finally:
        get_default_exception_reporter_filter.cache_clear()
    page = response.content.decode()
    assert response.status_code == 500 and "verifier broke" in page and "Local vars" in page
    # The secret is "It's a Secret to Everybody": look for it as the page would print it too.
    assert "Secret to Everybody" not in page

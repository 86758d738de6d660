"""The receiver's fast path: one read (connection, secret ciphertext, previous secret and replay
hit together) and one autocommitted insert per accepted delivery, the publication enqueued
only after that insert is committed, and secrets never stale across processes even though
their decryption is cached (the cache is keyed by the ciphertext read with the row)."""
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
def test_accepted_delivery_costs_one_read_and_one_insert_then_enqueues() -> None:
    make_github()
    post(Client(), "gh", "auto", github_body(0), github_headers(github_body(0)))  # warm: decryption cached
    enqueued: list[tuple[int, bool]] = []

    def enqueue(delivery_id: int) -> bool:
        # Runs after the commit: outside any transaction, the row already stored.
        enqueued.append((delivery_id, db_connection.in_atomic_block))
        return True

    body = github_body(1)
    with mock.patch("webhooks.receiver.publication_enqueue", side_effect=enqueue), \
            CaptureQueriesContext(db_connection) as context:
        response = post(Client(), "gh", "auto", body, github_headers(body, event="push"))
    assert response.status_code == 202
    sql = statements(context)
    assert len(sql) == 2, sql
    assert sql[0].upper().startswith("SELECT") and sql[1].upper().startswith("INSERT")
    assert enqueued == [(response.json()["delivery_id"], False)]


@pytest.mark.django_db(transaction=True)
def test_duplicate_is_found_by_the_same_read() -> None:
    make_github()
    body = github_body(2)
    first = post(Client(), "gh", "auto", body, github_headers(body))
    with CaptureQueriesContext(db_connection) as context:
        again = post(Client(), "gh", "auto", body, github_headers(body, delivery="redelivery"))
    assert again.status_code == 200 and again.json() == {"status": "duplicate",
                                                         "delivery_id": first.json()["delivery_id"]}
    assert not any(q.upper().startswith("INSERT INTO \"WEBHOOKS_DELIVERY\"") for q in statements(context))
    assert Delivery.objects.count() == 1


@pytest.mark.django_db
def test_unknown_and_impossible_names_read_nothing_and_get_the_uniform_401() -> None:
    body = github_body(3)
    response = post(Client(), "nobody", "auto", body, github_headers(body))
    assert response.status_code == 401
    assert response.json() == dict(receiver.UNAUTHORIZED_BODY)
    # A NUL in the path is refused before routing (synthorg.middleware.NulCharacterMiddleware).
    assert post(Client(), "bad%00name", "auto", body, github_headers(body)).status_code == 404
    assert receiver.connection_for_receipt("bad\x00name", body_key="k", now=timezone.now()) is None


@pytest.mark.django_db
def test_receipt_read_matches_the_selector_case_insensitively() -> None:
    make_github(name="Mixed.Case")
    found = receiver.connection_for_receipt("mixed.case", body_key="none", now=timezone.now())
    assert found is not None and found.name == "Mixed.Case"
    assert found.secret_ciphertext and found.previous_secret_ciphertext is None and found.existing_delivery_id is None


@pytest.mark.django_db
def test_previous_secret_read_with_the_row_only_inside_its_grace() -> None:
    connection = make_github()
    webhook_services.signing_secret_rotate(name="gh", secret="the-second-secret-value",
                                           previous_valid_until=timezone.now() + timedelta(hours=1))
    inside = receiver.connection_for_receipt("gh", body_key="k", now=timezone.now())
    assert receiver.signing_secrets(inside, timezone.now()) == [b"the-second-secret-value", GITHUB_SECRET.encode()]
    later = timezone.now() + timedelta(hours=2)
    after = receiver.connection_for_receipt("gh", body_key="k", now=later)
    assert after.previous_secret_ciphertext is None
    assert receiver.signing_secrets(after, later) == [b"the-second-secret-value", b""]
    assert after.pk == connection.pk


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


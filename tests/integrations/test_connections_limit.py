"""`max_connections_per_type` (409 naming the limit), also under concurrent creates, and concurrent duplicate names."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django.db import connection as db_connection
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection, SecretRecord
from synthorg.errors import Conflict, LimitReached

URL = "/api/v1/connections"


def slack(name: str) -> dict[str, Any]:
    return {"name": name, "connection_type": "slack", "credentials": {"token": "xoxb-1"}}


@pytest.mark.django_db
def test_limit_is_409_naming_the_limit(integrations_config: Any, operator_client: APIClient) -> None:
    integrations_config({"connections": {"max_connections_per_type": 2}})
    assert operator_client.post(URL, slack("s1"), format="json").status_code == 201
    assert operator_client.post(URL, slack("s2"), format="json").status_code == 201
    response = operator_client.post(URL, slack("s3"), format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "connection_limit_reached"
    assert "limit of 2 slack connections" in body["detail"]
    assert "integrations.connections.max_connections_per_type" in body["detail"]
    assert Connection.objects.count() == 2 and SecretRecord.objects.count() == 2
    # Per type: another type is not affected, and a delete frees a slot.
    assert operator_client.post(URL, {"name": "g1", "connection_type": "github", "credentials": {"token": "t"}},
                             format="json").status_code == 201
    assert operator_client.delete(f"{URL}/s1").status_code == 204
    assert operator_client.post(URL, slack("s3"), format="json").status_code == 201


@pytest.mark.django_db
def test_default_limit_is_100(operator_client: APIClient) -> None:
    Connection.objects.bulk_create(Connection(name=f"s{i}", connection_type="slack", secret_backend="encrypted_sqlite")
                                   for i in range(100))
    assert operator_client.post(URL, slack("one-more"), format="json").status_code == 409


def race(count: int, create: Any) -> Counter[str]:
    """Start `count` creates at once (a barrier), each on its own database connection."""
    barrier = threading.Barrier(count)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            create(i)
            outcome = "created"
        except LimitReached:
            outcome = "limit"
        except Conflict:
            outcome = "conflict"
        except Exception as exc:  # reported through the counter, so the assertion shows it
            outcome = f"error:{type(exc).__name__}:{exc}"
        finally:
            db_connection.close()
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_exceed_the_limit(integrations_config: Any) -> None:
    integrations_config({"connections": {"max_connections_per_type": 3}})
    outcomes = race(8, lambda i: services.connection_create(
        name=f"s{i}", connection_type="slack", credentials={"token": f"xoxb-{i}"}))
    assert outcomes == Counter({"created": 3, "limit": 5})
    assert Connection.objects.filter(connection_type="slack").count() == 3
    # No orphan secrets from the refused creates.
    assert SecretRecord.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_one_name_in_different_cases_admit_one() -> None:
    names = ["Shared", "shared", "SHARED", "sHaReD", "shared", "Shared"]
    outcomes = race(len(names), lambda i: services.connection_create(
        name=names[i], connection_type="slack", credentials={"token": "xoxb"}))
    assert outcomes == Counter({"created": 1, "conflict": len(names) - 1})
    assert Connection.objects.count() == 1 and SecretRecord.objects.count() == 1

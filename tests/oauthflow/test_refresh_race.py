"""Eight concurrent refreshers, threads and processes: the provider sees exactly one refresh."""
from __future__ import annotations

import multiprocessing
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection as db_connection
from django.db import connections
from django.utils import timezone

from oauthflow import services
from oauthflow.models import OAuthToken
from tests.oauthflow.race_workers import refresher
from tests.peers.oidc_peer import OIDCPeer

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 8


@pytest.fixture
def expired_connection(make_connection: Any, connect_code_flow: Any, oidc: OIDCPeer) -> Any:
    connection = make_connection()
    connect_code_flow(connection)
    OAuthToken.objects.filter(connection=connection).update(expires_at=timezone.now() - timedelta(seconds=1))
    oidc.reset_counters()
    return connection


def still_works(connection: Any, oidc: OIDCPeer) -> None:
    OAuthToken.objects.filter(connection=connection).update(expires_at=timezone.now() - timedelta(seconds=1))
    services.get_access_token(connection)
    assert oidc.token_requests("refresh_token") == 2
    assert OAuthToken.objects.get(connection=connection).status == OAuthToken.Status.ACTIVE


def test_eight_threads_refresh_once(expired_connection: Any, oidc: OIDCPeer) -> None:
    barrier = threading.Barrier(RACERS)
    results: list[str] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(services.get_access_token(expired_connection))
        except Exception as exc:  # collected and asserted below
            results.append(f"error: {type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(results) == RACERS
    assert not [r for r in results if r.startswith("error")], results
    assert len(set(results)) == 1
    assert oidc.token_requests("refresh_token") == 1
    still_works(expired_connection, oidc)


def test_eight_processes_refresh_once(expired_connection: Any, oidc: OIDCPeer) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(RACERS)
    results = context.Queue()
    db_name = db_connection.settings_dict["NAME"]
    processes = [context.Process(target=refresher, args=(db_name, expired_connection.pk, barrier, results))
                 for _ in range(RACERS)]
    for process in processes:
        process.start()
    got = [results.get(timeout=120) for _ in range(RACERS)]
    for process in processes:
        process.join(timeout=30)

    assert not [r for r in got if r.startswith("error")], got
    assert len(set(got)) == 1
    assert oidc.token_requests("refresh_token") == 1
    still_works(expired_connection, oidc)

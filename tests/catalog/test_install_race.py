"""Two concurrent installs of one entry leave one row (threads, each with its own connection)."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, connections

from catalog import services
from catalog.models import Installation
from synthorg.models import AuditEvent


@pytest.mark.django_db(transaction=True)
def test_concurrent_installs_leave_one_row() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises every write)")
    workers = 8
    barrier = threading.Barrier(workers)
    outcomes: list[Any] = []
    errors: list[BaseException] = []

    def install() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(services.installation_install(entry_id="memory"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=install) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert Installation.objects.filter(entry_id="memory").count() == 1
    assert sum(o.created for o in outcomes) == 1
    assert sum(o.changed for o in outcomes) == 1
    assert AuditEvent.objects.filter(action="mcp.install", target="memory").count() == 1

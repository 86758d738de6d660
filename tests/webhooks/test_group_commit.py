"""webhooks.group_commit: concurrent receiver threads share one INSERT and one commit, each
gets its own row's answer, and one failing row costs no other thread its answer (issue 15 §7)."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from tests.webhooks.receiving import github_body, github_headers, make_github
from webhooks import receiver
from webhooks.group_commit import GroupCommit, InterruptedStore
from webhooks.models import Delivery


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released at once; their results (or exceptions)."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work(index)
        except BaseException as exc:
            results[index] = exc
        finally:
            connections.close_all()  # this thread's own database connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a thread never got its answer"
    return results


# --- the combiner, without a database -----------------------------------------------------


def test_concurrent_items_share_batches_and_each_gets_its_own_result() -> None:
    sizes: list[int] = []

    def run_batch(items: list[int]) -> list[int]:
        sizes.append(len(items))
        time.sleep(0.01)  # a statement in flight: others queue behind it
        return [item * 10 for item in items]

    group = GroupCommit(run_batch)
    results = together(16, lambda i: group.submit(i))
    assert results == [i * 10 for i in range(16)]
    assert sum(sizes) == 16 and group.rows == 16
    assert len(sizes) < 16 and max(sizes) > 1  # shared statements, not one per item


def test_a_lone_item_is_a_batch_of_one() -> None:
    group = GroupCommit(lambda items: [f"row {item}" for item in items])
    assert group.submit(7) == "row 7"
    assert (group.batches, group.rows) == (1, 1)


def test_one_bad_item_fails_alone_when_its_batch_is_tried_row_by_row() -> None:
    started = threading.Event()

    def run_batch(items: list[int]) -> list[int]:
        started.set()
        time.sleep(0.01)
        if 3 in items:
            raise ValueError("the database refused a value")
        return items

    group = GroupCommit(run_batch)
    results = together(8, lambda i: group.submit(i))
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5, 6, 7]


def test_max_batch_bounds_a_statement() -> None:
    sizes: list[int] = []

    def run_batch(items: list[int]) -> list[int]:
        sizes.append(len(items))
        time.sleep(0.02)
        return items

    group = GroupCommit(run_batch, max_batch=3)
    assert together(12, lambda i: group.submit(i)) == list(range(12))
    assert max(sizes) <= 3


def test_a_leader_stopped_mid_statement_leaves_no_one_waiting_and_no_false_result() -> None:
    entered = threading.Event()
    release = threading.Event()
    calls = 0

    def run_batch(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            entered.set()
            release.wait(5)
            raise SystemExit("worker stopping")  # not an Exception: never retried row by row
        return items

    group = GroupCommit(run_batch)
    leader_result: list[BaseException] = []

    def leader() -> None:
        try:
            group.submit(0)
        except BaseException as exc:
            leader_result.append(exc)

    thread = threading.Thread(target=leader)
    thread.start()
    assert entered.wait(5)
    # These queue behind the stopped statement; the next leader stores them.
    followers = threading.Thread(target=lambda: leader_result.append(group.submit(1)))  # type: ignore[func-returns-value]
    followers.start()
    time.sleep(0.05)
    release.set()
    thread.join(5)
    followers.join(5)
    assert isinstance(leader_result[0], SystemExit)
    assert leader_result[1] == 1  # queued after the statement began: stored by the next one


def test_every_row_of_an_interrupted_statement_gets_an_error_not_a_result() -> None:
    from webhooks.group_commit import _Slot

    def run_batch(items: list[int]) -> list[int]:
        raise KeyboardInterrupt

    group: GroupCommit[int, int] = GroupCommit(run_batch)
    batch: list[_Slot[int, int]] = [_Slot(1), _Slot(2)]
    with pytest.raises(KeyboardInterrupt):
        group._run(batch)
    assert all(slot.done and isinstance(slot.error, InterruptedStore) for slot in batch)
    with pytest.raises(InterruptedStore):
        group._outcome(batch[1])


# --- on PostgreSQL ------------------------------------------------------------------------


def values_for(connection_id: int, name: str, n: int, replay_key: str | None = None) -> dict[str, Any]:
    from django.utils import timezone

    body = github_body(n)
    return {"connection_id": connection_id, "connection_name": name, "connection_type": "github",
            "event_type": "push", "event_name": "push", "path_event_type": "push", "provider_delivery_id": f"d-{n}",
            "replay_key": replay_key or uuid.uuid4().hex, "signed_timestamp": None, "matched_secret": "current",
            "outcome": Delivery.Outcome.ACCEPTED, "headers": {"x-github-event": "push"},
            "content_type": "application/json", "body": body, "payload": {"n": n}, "payload_escaped": False,
            "remote_ip": "127.0.0.1", "received_at": timezone.now()}


@pytest.mark.django_db(transaction=True)
def test_run_many_names_each_row_and_refuses_duplicates_inside_and_outside_the_batch() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the multi-row statement is PostgreSQL's")
    gh = make_github()
    first = receiver._delivery_insert.run(values_for(gh.pk, gh.name, 0, replay_key="k-0"))
    assert first is not None
    rows = [values_for(gh.pk, gh.name, 1, replay_key="k-1"), values_for(gh.pk, gh.name, 2, replay_key="k-0"),
            values_for(gh.pk, gh.name, 3, replay_key="k-3"), values_for(gh.pk, gh.name, 4, replay_key="k-1")]
    ids = receiver._delivery_insert.run_many(rows)
    assert ids[1] is None and ids[3] is None  # stored before, and the second of two equal rows
    assert ids[0] is not None and ids[2] is not None and ids[0] != ids[2]
    stored = dict(Delivery.objects.values_list("replay_key", "pk"))
    assert stored == {"k-0": first, "k-1": ids[0], "k-3": ids[2]}
    assert Delivery.objects.get(pk=ids[0]).payload == {"n": 1}


@pytest.mark.django_db(transaction=True)
def test_concurrent_receipts_share_statements_and_are_all_stored_before_their_answer() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the group commit is PostgreSQL's")
    gh = make_github()
    group = GroupCommit(receiver._delivery_insert.run_many)
    real = receiver._delivery_insert.run_many

    def slow_run_many(rows: list[Any]) -> list[int | None]:
        time.sleep(0.005)  # a commit that takes a moment: the others queue behind it
        return real(rows)

    group._run_batch = slow_run_many  # type: ignore[assignment]
    submitted = receiver._group_commit.submit

    def store(index: int) -> int | None:
        delivery_id = receiver.delivery_store(values_for(gh.pk, gh.name, index))
        # Answered only once committed: another connection already sees the row.
        other = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM webhooks_delivery WHERE id = %s", [delivery_id])
                assert cursor.fetchone()[0] == 1
        finally:
            other.close()  # its own session: left open, the test database could not be dropped
        return delivery_id

    with mock.patch.object(receiver, "_group_commit", group), \
            mock.patch.object(receiver, "publication_submit"):
        results = together(12, store)
    assert all(isinstance(result, int) for result in results), results
    assert len(set(results)) == 12 and Delivery.objects.count() == 12
    assert group.rows == 12 and group.batches < 12
    assert submitted == receiver._group_commit.submit


@pytest.mark.django_db(transaction=True)
def test_a_row_the_database_refuses_fails_alone(caplog: pytest.LogCaptureFixture) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the group commit is PostgreSQL's")
    gh = make_github()
    group = GroupCommit(receiver._delivery_insert.run_many)
    real = receiver._delivery_insert.run_many
    seen: list[int] = []

    def slow_run_many(rows: list[Any]) -> list[int | None]:
        seen.append(len(rows))
        time.sleep(0.005)
        return real(rows)

    group._run_batch = slow_run_many  # type: ignore[assignment]

    def store(index: int) -> int | None:
        values = values_for(gh.pk, gh.name, index)
        if index == 5:
            values["event_type"] = "x" * 500  # longer than the column: PostgreSQL refuses the row
        return receiver.delivery_store(values)

    with mock.patch.object(receiver, "_group_commit", group), mock.patch.object(receiver, "publication_submit"):
        results = together(10, store)
    assert isinstance(results[5], Exception)
    assert all(isinstance(result, int) for i, result in enumerate(results) if i != 5), results
    assert Delivery.objects.count() == 9


@pytest.mark.django_db(transaction=True)
def test_a_signed_delivery_through_the_view_uses_the_group_commit() -> None:
    from django.test import Client

    from tests.webhooks.receiving import post

    if connection.vendor != "postgresql":
        pytest.skip("the group commit is PostgreSQL's")
    make_github()
    before = receiver._group_commit.rows
    body = github_body(1)
    with mock.patch.object(receiver, "publication_submit"):
        response = post(Client(), "gh", "push", body, github_headers(body))
    assert response.status_code == 202
    assert receiver._group_commit.rows == before + 1
    assert Delivery.objects.get().pk == response.json()["delivery_id"]


def test_interrupted_store_is_a_runtime_error() -> None:
    assert issubclass(InterruptedStore, RuntimeError)


@pytest.mark.django_db(transaction=True)
def test_the_insert_is_prepared_once_per_connection_and_nothing_else_is() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    gh = make_github()
    for n in range(3):
        assert receiver._delivery_insert.run(values_for(gh.pk, gh.name, 100 + n)) is not None
    raw = connections[DEFAULT_DB_ALIAS].connection
    with raw.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert len(prepared) == 1 and prepared[0].startswith('INSERT INTO "webhooks_delivery"')
    # Django's own queries stay unprepared (its cursors bind on the client).
    Delivery.objects.filter(connection_id=gh.pk).count()
    with raw.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 1

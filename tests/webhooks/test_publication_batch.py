"""The batch path (issue 15 §6): a batch of deliveries claimed in one UPDATE, published together,
its workflow runs created in bulk and started by the same task; every step safe twice and
concurrently, a failure handing back only what failed."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection as db_connection
from django.db.utils import OperationalError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import Connection
from notifications.models import Problem
from synthorg import bus
from synthorg.http import TransientError
from tests.webhooks.receiving import make_github
from webhooks import services, tasks
from webhooks.bus_store import DatabaseBusStore
from webhooks.models import BusDelivery, BusMessage, Delivery, TriggerRule, WorkflowRun
from webhooks.workflows import Workflow, get_workflow


def stored(connection: Connection, count: int, *, received_at: Any = None) -> list[int]:
    """Accepted deliveries as the receiver leaves them (pending), without its on-commit hand-off."""
    received_at = received_at or timezone.now()
    return [Delivery.objects.create(
        connection=connection, connection_name=connection.name, connection_type="github", event_type="push",
        path_event_type="push", replay_key=uuid.uuid4().hex, body=b'{"n": %d}' % n, payload={"n": n},
        received_at=received_at).pk for n in range(count)]


def rule(name: str = "every", **extra: Any) -> TriggerRule:
    return services.trigger_rule_create(data={"name": name, "event_type": "*", "workflow": "log_event", **extra})


class Recorder:
    """A #webhooks subscriber that counts what it is handed (from any thread)."""

    def __init__(self, *, refuse: set[str] | None = None) -> None:
        self.seen: list[str] = []
        self.refuse = refuse or set()
        self._lock = threading.Lock()

    def __call__(self, channel: str, event: Any) -> None:
        if event["event_id"] in self.refuse:
            raise RuntimeError("subscriber refuses this one")
        with self._lock:
            self.seen.append(event["event_id"])


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    subscriber = Recorder()
    bus.subscribe("#webhooks", "test-recorder", subscriber)
    yield subscriber
    bus._subscribers["webhooks"].pop("test-recorder")


class CountingWorkflow:
    """log_event, counting its runs (a workflow executed twice would show here)."""

    def __init__(self, *, transient: set[int] | None = None, pause: float = 0.0) -> None:
        self.runs: list[int] = []
        self.transient = transient or set()
        self.pause = pause
        self._lock = threading.Lock()

    def run(self, event: Any, parameters: Any) -> dict[str, Any]:
        with self._lock:
            self.runs.append(event["delivery_id"])
        if event["delivery_id"] in self.transient:
            raise TransientError("peer busy", None)
        time.sleep(self.pause)
        return get_workflow("log_event").run(event, parameters)

    def patch(self) -> Any:
        real = get_workflow
        counted = Workflow("log_event", self.run, lambda p: None)
        return mock.patch("webhooks.services.get_workflow",
                          side_effect=lambda name: counted if name == "log_event" else real(name))


def event_ids(ids: list[int]) -> set[str]:
    return {str(e) for e in Delivery.objects.filter(pk__in=ids).values_list("event_id", flat=True)}


# --- the bulk claim ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_claim_takes_pending_and_stale_deliveries_and_leaves_live_claims_alone(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"publish_stuck_seconds": 60}}
    pending, live, stale, done = stored(make_github(), 4)
    now = timezone.now()
    Delivery.objects.filter(pk=live).update(publish_state=Delivery.PublishState.PUBLISHING,
                                            publish_claimed_at=now - timedelta(seconds=5), publish_attempts=1)
    Delivery.objects.filter(pk=stale).update(publish_state=Delivery.PublishState.PUBLISHING,
                                             publish_claimed_at=now - timedelta(seconds=61), publish_attempts=1)
    Delivery.objects.filter(pk=done).update(publish_state=Delivery.PublishState.PUBLISHED, published_at=now)
    missing = done + 1000

    report = services.deliveries_publish(delivery_ids=[pending, live, stale, done, missing])

    assert sorted(report.published) == [pending, stale]
    assert sorted(report.not_claimed) == [live, done, missing]
    assert report.counts() == {"published": 2, "not_claimed": 3}
    rows = {d.pk: d for d in Delivery.objects.filter(pk__in=[pending, live, stale, done])}
    assert rows[live].publish_state == Delivery.PublishState.PUBLISHING  # still the other worker's
    assert rows[live].publish_claimed_at == now - timedelta(seconds=5) and rows[live].publish_attempts == 1
    assert rows[stale].publish_state == Delivery.PublishState.PUBLISHED and rows[stale].publish_attempts == 2
    assert BusMessage.objects.count() == 2


@pytest.mark.django_db
def test_a_batch_costs_the_same_queries_whatever_its_size() -> None:
    connection = make_github()
    rule()
    small, large = stored(connection, 2), stored(connection, 20)
    with CaptureQueriesContext(db_connection) as two:
        services.deliveries_publish(delivery_ids=small)
    with CaptureQueriesContext(db_connection) as twenty:
        services.deliveries_publish(delivery_ids=large)
    assert len(twenty.captured_queries) == len(two.captured_queries)
    runs = list(WorkflowRun.objects.filter(delivery_id__in=small).values_list("pk", flat=True))
    more = list(WorkflowRun.objects.filter(delivery_id__in=large).values_list("pk", flat=True))
    with CaptureQueriesContext(db_connection) as two:
        services.workflow_runs_execute(run_ids=runs)
    with CaptureQueriesContext(db_connection) as twenty:
        services.workflow_runs_execute(run_ids=more)
    assert len(twenty.captured_queries) == len(two.captured_queries)


# --- twice, concurrently, after a crash ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_workers_publishing_the_same_batch_hand_each_event_once(recorder: Recorder) -> None:
    connection = make_github()
    rule()
    ids = stored(connection, 40)
    workflow = CountingWorkflow()
    start = threading.Barrier(2)
    results: list[dict[str, int]] = []

    def worker() -> None:
        try:
            start.wait()
            # The task, as a worker runs it: publication, then the runs it created.
            results.append(tasks.delivery_publish_batch_task.run(ids))
        finally:
            db_connection.close()

    with workflow.patch():
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sum(r.get("published", 0) for r in results) == 40
    assert sum(r.get("not_claimed", 0) for r in results) == 40
    assert sorted(recorder.seen) == sorted(event_ids(ids))
    assert set(Delivery.objects.values_list("publish_state", flat=True)) == {Delivery.PublishState.PUBLISHED}
    assert BusDelivery.objects.filter(subscriber=services.STRATEGY_SUBSCRIBER).count() == 40
    assert sorted(workflow.runs) == sorted(ids)
    assert WorkflowRun.objects.filter(status=WorkflowRun.Status.SUCCEEDED, attempts=1).count() == 40


@pytest.mark.django_db
def test_a_redelivered_batch_publishes_nothing_twice(recorder: Recorder) -> None:
    connection = make_github()
    rule()
    ids = stored(connection, 5)
    assert tasks.delivery_publish_batch_task.run(ids) == {"published": 5}
    assert tasks.delivery_publish_batch_task.run(ids) == {"not_claimed": 5}
    assert sorted(recorder.seen) == sorted(event_ids(ids))
    assert BusMessage.objects.count() == 5 and WorkflowRun.objects.count() == 5
    assert list(Delivery.objects.values_list("publish_attempts", flat=True)) == [1] * 5


@pytest.mark.django_db
def test_a_batch_killed_before_it_was_marked_is_finished_by_the_sweep_without_handing_twice(
        recorder: Recorder, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"publish_stuck_seconds": 10}}
    connection = make_github()
    rule()
    ids = stored(connection, 5, received_at=timezone.now() - timedelta(minutes=1))
    services.deliveries_publish(delivery_ids=ids)
    # What a SIGKILL between the subscribers' commits and the final UPDATE leaves behind.
    Delivery.objects.filter(pk__in=ids).update(publish_state=Delivery.PublishState.PUBLISHING,
                                               publish_claimed_at=timezone.now() - timedelta(seconds=11),
                                               published_at=None)
    with mock.patch("webhooks.dispatcher.send_batch", side_effect=lambda chunk: bool(
            services.deliveries_publish(delivery_ids=chunk))):
        assert services.publication_sweep()["deliveries"] == 5
    assert set(Delivery.objects.values_list("publish_state", flat=True)) == {Delivery.PublishState.PUBLISHED}
    assert sorted(recorder.seen) == sorted(event_ids(ids))  # once each
    assert WorkflowRun.objects.count() == 5 and BusMessage.objects.count() == 5


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_failing_event_goes_back_to_the_sweep_and_the_rest_is_published(settings: Any) -> None:
    connection = make_github()
    rule()
    ids = stored(connection, 5)
    bad = Delivery.objects.get(pk=ids[2])
    subscriber = Recorder(refuse={str(bad.event_id)})
    bus.subscribe("#webhooks", "test-refuser", subscriber)
    try:
        assert tasks.delivery_publish_batch_task.run(ids) == {"published": 4, "failed": 1}
        bad.refresh_from_db()
        assert bad.publish_state == Delivery.PublishState.PENDING and bad.publish_attempts == 1
        assert Delivery.objects.filter(publish_state=Delivery.PublishState.PUBLISHED).count() == 4
        # The strategy (an earlier subscriber) handled all five; the refuser the other four (its
        # in-memory list also saw the batch attempt that rolled back: handlers keep their effects
        # in the transaction, as synthorg.bus says, and the rows are what counts).
        assert WorkflowRun.objects.count() == 5
        assert BusDelivery.objects.filter(subscriber="test-refuser").count() == 4
        subscriber.refuse.clear()
        assert tasks.delivery_publish_batch_task.run([bad.pk]) == {"published": 1}
    finally:
        bus._subscribers["webhooks"].pop("test-refuser")
    assert BusDelivery.objects.filter(subscriber="test-refuser").count() == 5
    assert set(subscriber.seen) == event_ids(ids)
    assert WorkflowRun.objects.count() == 5  # the strategy was not handed the event again


@pytest.mark.django_db
def test_a_store_failure_hands_the_whole_batch_back(recorder: Recorder) -> None:
    ids = stored(make_github(), 3)
    with mock.patch.object(DatabaseBusStore, "record_many", side_effect=OperationalError("database gone")):
        assert tasks.delivery_publish_batch_task.run(ids) == {"failed": 3}
    assert set(Delivery.objects.values_list("publish_state", flat=True)) == {Delivery.PublishState.PENDING}
    assert recorder.seen == []
    assert tasks.delivery_publish_batch_task.run(ids) == {"published": 3}


def test_one_delivery_is_the_batch_of_one(recorder: Recorder, db: None) -> None:
    [delivery_id] = stored(make_github(), 1)
    assert services.delivery_publish(delivery_id=delivery_id) == "published"
    assert services.delivery_publish(delivery_id=delivery_id) == "not_claimed"
    assert len(recorder.seen) == 1


# --- runs ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_publishing_task_starts_the_runs_it_created_without_a_message_each() -> None:
    connection = make_github()
    rule("first")
    rule("second")
    ids = stored(connection, 4)
    workflow = CountingWorkflow()
    with workflow.patch(), mock.patch.object(tasks.workflow_run_batch_task, "apply_async") as sent:
        assert tasks.delivery_publish_batch_task.run(ids) == {"published": 4}
        assert tasks.delivery_publish_batch_task.run(ids) == {"not_claimed": 4}
    sent.assert_not_called()
    runs = list(WorkflowRun.objects.all())
    assert len(runs) == 8 and {(r.rule_name, r.delivery_id) for r in runs} == {
        (name, pk) for name in ("first", "second") for pk in ids}
    assert all(r.status == WorkflowRun.Status.SUCCEEDED and r.attempts == 1 and r.started_at and r.finished_at
               and r.result["logged"] for r in runs)
    assert sorted(workflow.runs) == sorted(ids * 2)


@pytest.mark.django_db
def test_runs_published_outside_a_worker_task_go_to_the_broker_in_one_message(
        django_capture_on_commit_callbacks: Any) -> None:
    connection = make_github()
    rule()
    ids = stored(connection, 3)
    with mock.patch.object(tasks.workflow_run_batch_task, "apply_async") as sent, \
            django_capture_on_commit_callbacks(execute=True):
        services.deliveries_publish(delivery_ids=ids)
    [call] = sent.call_args_list
    assert sorted(call.args[0][0]) == sorted(WorkflowRun.objects.values_list("pk", flat=True))


@pytest.mark.django_db
def test_the_run_claim_takes_pending_and_stale_runs_only(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"publish_stuck_seconds": 60}}
    connection = make_github()
    rule()
    ids = stored(connection, 4)
    with mock.patch("webhooks.tasks.workflow_runs_enqueue"):
        services.deliveries_publish(delivery_ids=ids)
    pending, live, stale, done = (WorkflowRun.objects.get(delivery_id=pk) for pk in ids)
    now = timezone.now()
    WorkflowRun.objects.filter(pk=live.pk).update(status=WorkflowRun.Status.RUNNING, attempts=1,
                                                  started_at=now - timedelta(seconds=5))
    WorkflowRun.objects.filter(pk=stale.pk).update(status=WorkflowRun.Status.RUNNING, attempts=1,
                                                   started_at=now - timedelta(seconds=61))
    WorkflowRun.objects.filter(pk=done.pk).update(status=WorkflowRun.Status.SUCCEEDED, attempts=1)
    workflow = CountingWorkflow()
    with workflow.patch():
        outcomes = services.workflow_runs_execute(run_ids=[pending.pk, live.pk, stale.pk, done.pk])
    assert {pk: o.status for pk, o in outcomes.items()} == {
        pending.pk: "succeeded", live.pk: "not_claimed", stale.pk: "succeeded", done.pk: "not_claimed"}
    assert sorted(workflow.runs) == sorted([pending.delivery_id, stale.delivery_id])
    live.refresh_from_db()
    assert live.status == WorkflowRun.Status.RUNNING and live.started_at == now - timedelta(seconds=5)
    stale.refresh_from_db()
    assert stale.attempts == 2 and stale.status == WorkflowRun.Status.SUCCEEDED


@pytest.mark.django_db
def test_a_redelivered_run_batch_runs_nothing_twice() -> None:
    connection = make_github()
    rule()
    ids = stored(connection, 3)
    with mock.patch("webhooks.tasks.workflow_runs_enqueue"):
        services.deliveries_publish(delivery_ids=ids)
    runs = list(WorkflowRun.objects.values_list("pk", flat=True))
    workflow = CountingWorkflow()
    with workflow.patch():
        assert tasks.workflow_run_batch_task.run(runs) == {"succeeded": 3}
        assert tasks.workflow_run_batch_task.run(runs) == {"not_claimed": 3}
    assert sorted(workflow.runs) == sorted(ids)


@pytest.mark.django_db
def test_transient_failures_in_a_batch_wait_in_one_message_per_countdown() -> None:
    connection = make_github()
    rule()
    ids = stored(connection, 4)
    with mock.patch("webhooks.tasks.workflow_runs_enqueue"):
        services.deliveries_publish(delivery_ids=ids)
    runs = {run.delivery_id: run.pk for run in WorkflowRun.objects.all()}
    workflow = CountingWorkflow(transient={ids[1], ids[3]})
    with workflow.patch(), mock.patch.object(tasks.workflow_run_batch_task, "apply_async") as sent:
        assert tasks.workflow_run_batch_task.run(list(runs.values())) == {"succeeded": 2, "pending": 2}
    [call] = sent.call_args_list
    assert sorted(call.args[0][0]) == sorted([runs[ids[1]], runs[ids[3]]]) and call.kwargs["countdown"] == 5
    retried = WorkflowRun.objects.get(pk=runs[ids[1]])
    assert retried.status == WorkflowRun.Status.PENDING and retried.attempts == 1
    assert "TransientError" in retried.error and retried.next_attempt_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(("order", "live"), [(["fail", "ok", "ok"], False), (["ok", "ok", "fail"], True),
                                             (["fail", "fail", "ok"], False)])
def test_alerts_follow_the_runs_of_a_batch_in_order(order: list[str], live: bool) -> None:
    connection = make_github()
    rule()
    ids = stored(connection, len(order))
    with mock.patch("webhooks.tasks.workflow_runs_enqueue"):
        services.deliveries_publish(delivery_ids=ids)
    failing = {pk for pk, outcome in zip(ids, order, strict=True) if outcome == "fail"}

    def run(event: Any, parameters: Any) -> dict[str, Any]:
        if event["delivery_id"] in failing:
            raise ValueError("the workflow broke")
        return {}

    runs = list(WorkflowRun.objects.order_by("delivery_id").values_list("pk", flat=True))
    with mock.patch("webhooks.services.get_workflow", return_value=Workflow("log_event", run, lambda p: None)):
        services.workflow_runs_execute(run_ids=runs)
    problems = Problem.objects.filter(event="workflow_run.failed", subject="workflow:every")
    assert problems.exists()  # the default rule picks workflow_run.failed
    assert problems.filter(state__in=[Problem.State.OPEN, Problem.State.PENDING]).exists() is live
    assert set(WorkflowRun.objects.values_list("status", flat=True)) == (
        {"failed", "succeeded"} if len(failing) < len(order) else {"failed"})


@pytest.mark.django_db
def test_runs_not_started_within_half_the_stuck_bound_are_handed_back(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"publish_stuck_seconds": 1}}
    connection = make_github()
    rule()
    ids = stored(connection, 3)
    with mock.patch("webhooks.tasks.workflow_runs_enqueue"):
        services.deliveries_publish(delivery_ids=ids)
    runs = list(WorkflowRun.objects.order_by("delivery_id").values_list("pk", flat=True))
    workflow = CountingWorkflow(pause=0.6)
    with workflow.patch(), mock.patch.object(tasks.workflow_run_batch_task, "apply_async") as sent:
        assert tasks.workflow_run_batch_task.run(runs) == {"succeeded": 1, "pending": 2}
    assert workflow.runs == [ids[0]]
    [call] = sent.call_args_list
    assert call.args[0][0] == runs[1:] and call.kwargs["countdown"] == 0
    for run in WorkflowRun.objects.filter(pk__in=runs[1:]):
        assert run.status == WorkflowRun.Status.PENDING and run.attempts == 0 and run.started_at is None


@pytest.mark.django_db
def test_the_sweep_enqueues_runs_in_batches() -> None:
    from webhooks.dispatcher import MAX_BATCH

    connection = make_github()
    rule()
    ids = stored(connection, MAX_BATCH + 2)
    with mock.patch("webhooks.tasks.workflow_runs_enqueue"):
        services.deliveries_publish(delivery_ids=ids)
    WorkflowRun.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    with mock.patch.object(tasks.workflow_run_batch_task, "apply_async") as sent:
        result = services.publication_sweep()
    assert result["runs"] == result["runs_enqueued"] == MAX_BATCH + 2
    assert [len(call.args[0][0]) for call in sent.call_args_list] == [MAX_BATCH, 2]


class Interrupted(BaseException):
    """What stops a worker in the middle of a workflow (not an Exception: nothing catches it)."""


@pytest.mark.django_db
def test_runs_that_ended_before_an_interruption_are_recorded_and_not_run_again() -> None:
    connection = make_github()
    rule()
    ids = stored(connection, 3)
    with mock.patch("webhooks.tasks.workflow_runs_enqueue"):
        services.deliveries_publish(delivery_ids=ids)
    runs = list(WorkflowRun.objects.order_by("delivery_id").values_list("pk", flat=True))

    def run(event: Any, parameters: Any) -> dict[str, Any]:
        if event["delivery_id"] == ids[1]:
            raise Interrupted
        return {}

    with mock.patch("webhooks.services.get_workflow", return_value=Workflow("log_event", run, lambda p: None)), \
            pytest.raises(Interrupted):
        services.workflow_runs_execute(run_ids=runs)
    statuses = dict(WorkflowRun.objects.values_list("pk", "status"))
    assert statuses == {runs[0]: "succeeded", runs[1]: "running", runs[2]: "running"}  # the sweep's, later

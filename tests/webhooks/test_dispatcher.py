"""webhooks.dispatcher: accepted deliveries reach Celery in batches from a per-process thread,
never from the request; webhooks.tasks.delivery_publish_batch publishes each delivery once
(the batch path itself: tests/webhooks/test_publication_batch.py)."""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError

from tests.webhooks.receiving import github_body, github_headers, make_github, post
from webhooks import dispatcher as dispatcher_module
from webhooks import receiver
from webhooks import services as webhook_services
from webhooks.dispatcher import MAX_BATCH, PublicationDispatcher, send_batch
from webhooks.models import BusMessage, Delivery
from webhooks.tasks import delivery_publish_batch_task, delivery_publish_task

WAIT = 5.0  # generous bound on every wait: a failing test fails, a passing one never sleeps this long


class FakeSend:
    """Records each batch; can hold a send open (the thread is then busy) until released."""

    def __init__(self, *, hold_first: bool = False, fail_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.hold_first = hold_first
        self.fail_first = fail_first
        if not hold_first:
            self.release.set()

    def __call__(self, batch: list[int]) -> bool:
        first = not self.batches
        self.batches.append(list(batch))
        self.entered.set()
        if first and self.hold_first:
            assert self.release.wait(WAIT)
        if first and self.fail_first:
            raise RuntimeError("broker exploded")
        return True


@pytest.fixture
def held() -> Iterator[tuple[PublicationDispatcher, FakeSend]]:
    """A dispatcher whose first send (of id 0) is in progress until ``send.release`` is set."""
    send = FakeSend(hold_first=True)
    dispatcher = PublicationDispatcher(send, linger=0)
    dispatcher.submit(0)
    assert send.entered.wait(WAIT)
    yield dispatcher, send
    send.release.set()  # never leave the daemon thread parked on a failed test
    dispatcher.flush(WAIT)


def test_ids_queued_while_a_send_is_in_flight_go_in_capped_batches_in_order(
        held: tuple[PublicationDispatcher, FakeSend]) -> None:
    dispatcher, send = held
    for delivery_id in range(1, MAX_BATCH * 2 + 21):
        dispatcher.submit(delivery_id)
    assert dispatcher.pending() == MAX_BATCH * 2 + 20 + 1  # queued, plus the one being sent
    send.release.set()
    assert dispatcher.flush(WAIT)
    assert send.batches == [[0], list(range(1, MAX_BATCH + 1)), list(range(MAX_BATCH + 1, 2 * MAX_BATCH + 1)),
                            list(range(2 * MAX_BATCH + 1, 2 * MAX_BATCH + 21))]
    assert dispatcher.pending() == 0


def test_a_smaller_max_batch_is_honoured() -> None:
    send = FakeSend(hold_first=True)
    dispatcher = PublicationDispatcher(send, max_batch=3, linger=0)
    dispatcher.submit(0)
    assert send.entered.wait(WAIT)
    for delivery_id in range(1, 8):
        dispatcher.submit(delivery_id)
    send.release.set()
    assert dispatcher.flush(WAIT)
    assert send.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]


def test_ids_submitted_within_the_linger_share_one_message() -> None:
    send = FakeSend()
    # A long linger: the ids below are queued microseconds apart, far inside it.
    dispatcher = PublicationDispatcher(send, linger=0.5)
    for delivery_id in (11, 12, 13):
        dispatcher.submit(delivery_id)
    assert dispatcher.flush(WAIT)
    assert send.batches == [[11, 12, 13]]


def test_submit_never_waits_for_the_broker(held: tuple[PublicationDispatcher, FakeSend]) -> None:
    dispatcher, send = held
    # The send is stuck; submit still returns (a blocking submit would hang this test).
    done = threading.Event()
    threading.Thread(target=lambda: (dispatcher.submit(1), done.set()), daemon=True).start()
    assert done.wait(WAIT)
    assert send.batches == [[0]]


def test_flush_times_out_while_a_send_is_stuck_then_completes(held: tuple[PublicationDispatcher, FakeSend]) -> None:
    dispatcher, send = held
    assert dispatcher.pending() == 1  # the batch being sent still counts
    assert dispatcher.flush(0.05) is False
    send.release.set()
    assert dispatcher.flush(WAIT) is True
    assert dispatcher.pending() == 0


def test_flush_with_nothing_queued_returns_at_once() -> None:
    dispatcher = PublicationDispatcher(FakeSend())
    assert dispatcher.pending() == 0
    assert dispatcher.flush(0) is True


def test_a_send_that_raises_does_not_kill_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    send = FakeSend(fail_first=True)
    dispatcher = PublicationDispatcher(send, linger=0)
    with caplog.at_level(logging.ERROR, logger="webhooks.dispatcher"):
        dispatcher.submit(1)
        assert dispatcher.flush(WAIT)
    assert "could not enqueue the publication of 1 deliveries" in caplog.text
    thread = dispatcher._thread
    assert thread is not None and thread.is_alive()
    dispatcher.submit(2)
    assert dispatcher.flush(WAIT)
    assert send.batches == [[1], [2]]
    assert dispatcher._thread is thread  # the same thread sent it: it survived, it was not replaced


def test_a_forked_child_starts_with_an_empty_queue_and_its_own_thread(
        held: tuple[PublicationDispatcher, FakeSend]) -> None:
    dispatcher, send = held
    dispatcher.submit(1)  # queued behind the stuck send: the child must not inherit it
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only, never return into pytest
        status = 1
        try:
            # The parent's thread (parked inside a send, holding its state) did not come along.
            if dispatcher.pending() != 0:
                status = 2
            else:
                child_batches: list[list[int]] = []
                dispatcher._send = lambda batch: child_batches.append(list(batch)) or True
                dispatcher.submit(42)
                if not dispatcher.flush(WAIT):
                    status = 3
                elif child_batches != [[42]]:
                    status = 4
                else:
                    status = 0
        finally:
            os._exit(status)
    _, code = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(code) == 0
    # The parent's own queue is untouched by the child.
    assert dispatcher.pending() == 2
    send.release.set()
    assert dispatcher.flush(WAIT)
    assert send.batches == [[0], [1]]


def test_send_batch_hands_one_message_to_celery() -> None:
    with mock.patch.object(delivery_publish_batch_task, "apply_async") as apply_async:
        assert send_batch([3, 4, 5]) is True
    apply_async.assert_called_once_with(([3, 4, 5],), retry=False)


@pytest.mark.parametrize("error", [OperationalError("connection refused"), ConnectionRefusedError(111, "refused")])
def test_send_batch_returns_false_and_logs_when_the_broker_refuses(
        error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    from webhooks import dispatcher as dispatcher_module

    with mock.patch.object(delivery_publish_batch_task, "apply_async", side_effect=error), \
            mock.patch.object(dispatcher_module, "broker_outage_log", dispatcher_module.BrokerOutageLog()), \
            caplog.at_level(logging.WARNING, logger="webhooks.dispatcher"):
        assert send_batch([7, 8]) is False
    assert "broker unavailable, 2 deliveries left to the outbox sweep" in caplog.text


def test_publication_submit_uses_the_dispatcher_unless_celery_is_eager() -> None:
    lazy_task = mock.Mock()
    lazy_task.app.conf.task_always_eager = False
    with mock.patch.object(dispatcher_module.dispatcher, "submit") as submit, \
            mock.patch.object(dispatcher_module, "send_batch") as send:
        with mock.patch.object(receiver, "delivery_publish_batch_task", lazy_task):
            receiver.publication_submit(9)
        submit.assert_called_once_with(9)
        send.assert_not_called()
        assert delivery_publish_task.app.conf.task_always_eager  # the test settings run Celery eagerly
        receiver.publication_submit(10)
        send.assert_called_once_with([10])
        assert submit.call_count == 1


@pytest.mark.django_db
def test_sweep_sends_left_behind_deliveries_in_batches() -> None:
    connection = make_github()
    old = timezone.now() - timedelta(minutes=5)
    ids = [Delivery.objects.create(connection=connection, connection_name="gh", connection_type="github",
                                   event_type="push", path_event_type="push", replay_key=f"k{n}", body=b"{}",
                                   received_at=old).pk for n in range(MAX_BATCH + 3)]
    with mock.patch.object(dispatcher_module, "send_batch", return_value=True) as send:
        result = webhook_services.publication_sweep()
    assert [len(call.args[0]) for call in send.call_args_list] == [MAX_BATCH, 3]
    assert sorted(i for call in send.call_args_list for i in call.args[0]) == ids
    assert result["deliveries"] == MAX_BATCH + 3


# --- webhooks.delivery_publish_batch ------------------------------------------------------


@pytest.mark.django_db
def test_batch_task_publishes_each_delivery_once() -> None:
    make_github()
    ids = []
    for n in range(3):
        body = github_body(n)
        response = post(Client(), "gh", "push", body, github_headers(body, delivery=f"d-{n}"))
        assert response.status_code == 202
        ids.append(response.json()["delivery_id"])
    # The test's transaction never commits: nothing was published on receipt.
    assert set(Delivery.objects.values_list("publish_state", flat=True)) == {Delivery.PublishState.PENDING}
    event_ids = {str(e) for e in Delivery.objects.values_list("event_id", flat=True)}

    assert delivery_publish_batch_task.run(ids) == {"published": 3}
    assert set(Delivery.objects.values_list("publish_state", flat=True)) == {Delivery.PublishState.PUBLISHED}
    messages = BusMessage.objects.filter(event_id__in=event_ids)
    assert messages.count() == 3
    assert {m.payload["delivery_id"] for m in messages} == set(ids)

    # Again (the sweep and the thread both sent it): nothing new.
    assert delivery_publish_batch_task.run(ids) == {"not_claimed": 3}
    assert BusMessage.objects.filter(event_id__in=event_ids).count() == 3
    assert list(Delivery.objects.values_list("publish_attempts", flat=True)) == [1, 1, 1]


@pytest.mark.django_db
def test_batch_task_keeps_going_past_a_failing_or_missing_delivery() -> None:
    from synthorg import bus

    make_github()
    ids = []
    for n in range(2):
        body = github_body(n)
        ids.append(post(Client(), "gh", "push", body, github_headers(body, delivery=f"d-{n}")).json()["delivery_id"])
    failing, good = ids
    missing = good + 1000
    bad_event = str(Delivery.objects.get(pk=failing).event_id)

    def refuse(channel: str, event: dict[str, object]) -> None:
        if event["event_id"] == bad_event:
            raise RuntimeError("subscriber down")

    bus.subscribe("#webhooks", "test-refuser", refuse)
    try:
        assert delivery_publish_batch_task.run([failing, missing, good]) == {"failed": 1, "not_claimed": 1,
                                                                              "published": 1}
    finally:
        bus._subscribers["webhooks"].pop("test-refuser")
    assert Delivery.objects.get(pk=good).publish_state == Delivery.PublishState.PUBLISHED
    assert Delivery.objects.get(pk=failing).publish_state == Delivery.PublishState.PENDING  # left to the sweep

"""Issue 13, part 2: the receiver keeps accepting when Redis is down.

Observed before, with the default deployment (one Redis for broker and limits, limits on):
Redis killed, 30 of 30 signed deliveries got 503; a workflow run (http_forward) that met the
limiter's outage was marked failed at once (12 of 177 runs).
"""
from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from django.test import Client

from integrations import services as connection_services
from integrations.ratelimit import RateLimiterUnavailable, get_rate_limiter
from synthorg.errors import ServiceUnavailable
from synthorg.http import TransientError
from tests.webhooks.receiving import github_body, github_headers, make_github, post
from webhooks import gate as gate_module
from webhooks import services
from webhooks.gate import FALLBACK_LOG_INTERVAL_SECONDS, REDIS_RETRY_SECONDS, LocalBudgets, process_share
from webhooks.models import Delivery, TriggerRule, WorkflowRun

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def budgets(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> LocalBudgets:
    """This process's fallback budgets, fresh and on a clock the test moves."""
    fresh = LocalBudgets(monotonic=clock)
    monkeypatch.setattr(gate_module, "local_budgets", fresh)
    monkeypatch.setattr(gate_module, "_gates", {})
    return fresh


@pytest.fixture
def redis_down(settings: Any, budgets: LocalBudgets) -> None:
    """The default deployment's Redis (broker and limits) is unreachable from here on."""
    make_github()  # created while Redis is up (its change is announced there)
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"


def deliver(n: int, client: Client | None = None) -> Any:
    body = github_body(n)
    return post(client or Client(), "gh", "auto", body, github_headers(body, delivery=f"d-{n}"))


def test_defaults_have_both_limits_on() -> None:
    from synthorg.config import get_config

    cfg = get_config().integrations.webhooks
    assert cfg.rate_limit_rpm > 0 and cfg.flood_rpm_per_ip > 0


def test_thirty_signed_deliveries_are_accepted_and_stored_while_redis_is_down(redis_down: None,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)  # the default deployment
    counted = gate_module.FALLBACK_DECISIONS.labels("admitted")
    before = counted._value.get()
    responses = [deliver(n) for n in range(30)]
    assert [r.status_code for r in responses] == [202] * 30
    assert counted._value.get() - before == 30  # synthorg_webhook_limit_fallback at /metrics
    stored = set(Delivery.objects.values_list("pk", flat=True))
    assert stored == {r.json()["delivery_id"] for r in responses}


def test_duplicates_are_still_duplicates_while_redis_is_down(redis_down: None) -> None:
    first = deliver(1)
    again = deliver(1)
    assert first.status_code == 202 and again.json() == {"status": "duplicate",
                                                         "delivery_id": first.json()["delivery_id"]}


def test_the_connection_limit_refills_at_this_process_share(redis_down: None, settings: Any, clock: Clock,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 10}}
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    assert process_share(10) == 5
    # The whole minute's budget at once (as the shared bucket), then 5 a minute: one per 12 s.
    assert [deliver(n).status_code for n in range(11)] == [202] * 10 + [429]
    clock.now += 12.5
    assert [deliver(n).status_code for n in range(11, 13)] == [202, 429]
    assert Delivery.objects.count() == 11


def test_the_flood_guard_refills_at_this_process_share(redis_down: None, settings: Any, clock: Clock,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"flood_rpm_per_ip": 6}}
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert [deliver(n).status_code for n in range(7)] == [202] * 6 + [429]
    clock.now += 30.5  # 2 a minute here
    assert [deliver(n).status_code for n in range(7, 9)] == [202, 429]


def test_a_refused_delivery_hands_its_local_reservation_back(redis_down: None, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 2}}
    body = github_body(99)
    unsigned = post(Client(), "gh", "auto", body, {"X-GitHub-Event": "push"})
    assert unsigned.status_code == 401
    assert [deliver(n).status_code for n in range(3)] == [202, 202, 429]


@pytest.mark.parametrize(("workers", "share"), [("", 25), ("many", 25), ("1", 100), ("0", 100), ("3", 34)])
def test_the_share_follows_the_worker_count(monkeypatch: pytest.MonkeyPatch, workers: str, share: int) -> None:
    # Unset: deploy/gunicorn.conf.py's default of 4 workers.
    monkeypatch.setenv("WEB_CONCURRENCY", workers)
    assert process_share(100) == share


def test_the_fallback_is_logged_once_per_minute_not_per_request(redis_down: None, clock: Clock,
                                                                budgets: LocalBudgets,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="webhooks.gate"):
        for n in range(10):
            assert deliver(n).status_code == 202
            clock.now += 1
    lines = [r.getMessage() for r in caplog.records if r.name == "webhooks.gate"]
    assert len(lines) == 1 and "unreachable" in lines[0]
    assert budgets.total == 10
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="webhooks.gate"):
        clock.now += FALLBACK_LOG_INTERVAL_SECONDS
        assert deliver(100).status_code == 202
        assert deliver(101).status_code == 202
    lines = [r.getMessage() for r in caplog.records if r.name == "webhooks.gate"]
    assert len(lines) == 1 and "still unreachable: 11 requests" in lines[0]


def test_redis_is_asked_again_only_after_the_retry_window(redis_down: None, clock: Clock,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert deliver(1).status_code == 202
    gate = gate_module.get_gate()
    calls: list[Any] = []
    pool = gate.client.connection_pool
    real_get = pool.get_connection
    # Every attempt to reach Redis starts by taking a connection from the pool.
    monkeypatch.setattr(pool, "get_connection", lambda *args: calls.append(args) or real_get(*args))
    assert deliver(2).status_code == 202
    assert calls == []  # within the window: this process's budgets, no round trip
    clock.now += REDIS_RETRY_SECONDS + 0.1
    assert deliver(3).status_code == 202
    assert len(calls) == 1


def test_redis_back_means_shared_budgets_again(settings: Any, budgets: LocalBudgets, clock: Clock,
                                               redis_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    make_github()
    live_url = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    assert deliver(1).status_code == 202
    settings.REDIS_URL = live_url
    clock.now += REDIS_RETRY_SECONDS + 0.1
    with caplog.at_level(logging.WARNING, logger="webhooks.gate"):
        response = deliver(2)
    assert response.status_code == 202
    assert "reachable again" in caplog.text
    assert budgets.total == 1


# --- the limiter's outage is a transient error everywhere ---------------------------------


def test_the_limiter_outage_is_transient_and_still_a_503() -> None:
    outage = RateLimiterUnavailable()
    assert isinstance(outage, TransientError) and isinstance(outage, ServiceUnavailable)
    assert outage.status_code == 503 and outage.code == "service_unavailable"


def test_a_run_that_meets_the_limiter_outage_is_retried_with_backoff(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"workflow_max_attempts": 5}}
    connection_services.connection_create(name="sink", connection_type="generic_http",
                                          credentials={"base_url": "http://127.0.0.1:9/", "token": "t"})
    make_github()
    services.trigger_rule_create(data={"name": "fwd", "event_type": "*", "workflow": "http_forward",
                                       "parameters": {"connection": "sink"}})
    services.delivery_publish(delivery_id=deliver(1).json()["delivery_id"])  # the run waits for its task
    run = WorkflowRun.objects.get(rule=TriggerRule.objects.get(name="fwd"))
    assert run.status == WorkflowRun.Status.PENDING
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    with pytest.raises(RateLimiterUnavailable):
        get_rate_limiter().acquire("probe", rpm=1)
    waits = []
    for _attempt in range(2):
        outcome = services.workflow_run_execute(run_id=run.pk)
        run.refresh_from_db()
        assert outcome.status == WorkflowRun.Status.PENDING and run.status == WorkflowRun.Status.PENDING
        assert "RateLimiterUnavailable" in run.error and run.next_attempt_at is not None
        waits.append(outcome.retry_in)
        WorkflowRun.objects.filter(pk=run.pk).update(next_attempt_at=None)
    assert waits[1] > waits[0] > 0  # backoff


def test_a_refusing_broker_is_logged_once_per_minute_not_per_batch(caplog: pytest.LogCaptureFixture,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   clock: Clock) -> None:
    from unittest import mock

    from kombu.exceptions import OperationalError

    from webhooks import dispatcher
    from webhooks.tasks import delivery_publish_batch_task

    monkeypatch.setattr(dispatcher, "broker_outage_log", dispatcher.BrokerOutageLog(monotonic=clock))
    with caplog.at_level(logging.WARNING, logger="webhooks.dispatcher"):
        with mock.patch.object(delivery_publish_batch_task, "apply_async", side_effect=OperationalError("refused")):
            assert not any(dispatcher.send_batch([n]) for n in range(20))
            clock.now += 61
            assert dispatcher.send_batch([99]) is False
        with mock.patch.object(delivery_publish_batch_task, "apply_async"):
            assert dispatcher.send_batch([100]) is True
    lines = [r.getMessage() for r in caplog.records if r.name == "webhooks.dispatcher"]
    assert len(lines) == 3
    assert lines[0].startswith("broker unavailable, 1 deliveries")
    assert lines[1].startswith("broker still unavailable: 20 more deliveries")
    assert lines[2].startswith("broker available again")


def test_a_refund_that_meets_a_dead_redis_opens_the_retry_window(budgets: LocalBudgets, redis_client: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Admitted through Redis, which died before the refund (in the view's `finally`): every
    # such request must not wait out its own Redis timeout, nor the next requests theirs.
    import redis

    gate = gate_module.ReceiptGate(redis_client, budgets)
    calls: list[Any] = []

    def dead(*args: Any) -> Any:
        calls.append(args)
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(gate, "_call", dead)
    gate.refund(connection_name="gh", connection_rpm=60)
    assert budgets.redis_skipped()
    gate.refund(connection_name="gh", connection_rpm=60)
    assert len(calls) == 1

"""Across real processes: replay protection shared by two web servers and surviving a restart,
the per-connection limit shared by both, and nothing lost or doubled through broker and worker
faults (a private redis-server started here, a real Celery worker and beat)."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.e2e.embedded import free_port
from tests.webhooks import processes
from tests.webhooks.receiving import github_headers, make_github
from webhooks import gate, services
from webhooks.models import BusDelivery, BusMessage, Delivery, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def send(base: str, n: int, event: str = "push") -> requests.Response:
    body = json.dumps({"n": n, "action": "opened"}).encode()
    return requests.post(f"{base}/api/v1/webhooks/gh/auto", data=body, timeout=30,
                         headers={**github_headers(body, event=event), "Content-Type": "application/json"})


def test_replay_and_rate_limit_are_shared_by_two_web_processes_and_survive_restart(tmp_path: Path) -> None:
    make_github()
    env = processes.service_env(tmp_path, settings.REDIS_URL, rate_limit_rpm=5, flood_rpm_per_ip=0)
    first, first_url = processes.web(env, tmp_path, "web-a")
    second, second_url = processes.web(env, tmp_path, "web-b")
    try:
        accepted = send(first_url, 1)
        assert accepted.status_code == 202
        duplicate = send(second_url, 1)
        assert duplicate.status_code == 200 and duplicate.json()["status"] == "duplicate"
        # Four more new deliveries split between the two: the fifth of the minute is the last one admitted.
        codes = [send(url, n).status_code for n, url in zip(range(2, 7), [first_url, second_url] * 3, strict=False)]
        assert codes == [202, 202, 202, 202, 429]
        second.stop()
        second, second_url = processes.web(env, tmp_path, "web-b2")
        after_restart = send(second_url, 1)
        assert after_restart.status_code == 200 and after_restart.json()["delivery_id"] == accepted.json()["delivery_id"]
    finally:
        first.stop()
        second.stop()
    assert Delivery.objects.count() == 5


def test_nothing_lost_or_doubled_when_broker_and_worker_fail(tmp_path: Path) -> None:
    from synthorg.config import get_config

    defaults = get_config().integrations.webhooks
    assert defaults.rate_limit_rpm > 0 and defaults.flood_rpm_per_ip > 0
    make_github()
    services.trigger_rule_create(data={"name": "all", "event_type": "*", "workflow": "log_event"})
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    redis = processes.redis_server(redis_port, tmp_path)
    # The default deployment (issue 13): one Redis for the broker and the limits, both limits on
    # (turning them off hid the 503s a dead Redis caused). The Redis kill below lands mid-burst.
    env = processes.service_env(tmp_path, redis_url, publish_stuck_seconds=3, publish_sweep_interval_seconds=1)
    env["SYNTHORG_BROKER_VISIBILITY_TIMEOUT"] = "3600"
    started: list[processes.Proc] = [redis]
    try:
        web, base = processes.web(env, tmp_path)
        started.append(web)
        started.append(processes.beat(env, tmp_path))
        work = processes.worker(env, tmp_path)
        started.append(work)
        accepted: list[int] = []

        def burst(start: int, count: int) -> None:
            for n in range(start, start + count):
                response = send(base, n)
                assert response.status_code == 202, response.text
                accepted.append(response.json()["delivery_id"])

        burst(0, 10)
        redis.stop(signal.SIGKILL)  # the broker dies during the burst
        burst(10, 10)
        redis = processes.redis_server(redis_port, tmp_path)
        started.append(redis)
        time.sleep(gate.REDIS_RETRY_SECONDS + 0.5)  # the web process asks Redis again after this
        burst(20, 10)
        # Kill the worker while it publishes the next burst, then start another.
        burst(30, 20)
        work.stop(signal.SIGKILL)
        started.append(processes.worker(env, tmp_path, "worker-2"))
        burst(50, 10)

        def all_done() -> bool:
            published = Delivery.objects.filter(pk__in=accepted, publish_state=Delivery.PublishState.PUBLISHED)
            finished = WorkflowRun.objects.filter(status=WorkflowRun.Status.SUCCEEDED)
            return published.count() == len(accepted) and finished.count() == len(accepted)

        processes.wait_until(all_done, 150, "every delivery published and every run finished")
        time.sleep(3)  # anything published twice would show up now
    finally:
        for proc in reversed(started):
            proc.stop()
    assert len(set(accepted)) == 60
    # The outage is logged once when it starts (and once when it ends), not per delivery.
    web_log = (tmp_path / "web.log").read_text(errors="replace")
    assert web_log.count("the shared rate limiter (Redis) is unreachable") == 1, web_log[-3000:]
    assert web_log.count("the shared rate limiter (Redis) is reachable again") == 1
    assert BusMessage.objects.filter(channel="webhooks").count() == 60
    assert BusDelivery.objects.filter(subscriber="external_trigger_strategy").count() == 60
    runs = list(WorkflowRun.objects.values_list("event_id", flat=True))
    assert len(runs) == len(set(runs)) == 60
    assert not WorkflowRun.objects.exclude(status=WorkflowRun.Status.SUCCEEDED).exists()

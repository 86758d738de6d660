"""RabbitMQ as the broker (issue 15 §2): the broker-fault test of tests/webhooks/test_processes.py
against a private rabbitmq-server node this test starts (never the machine's shared one):
the broker stopped mid-burst and restarted, a worker SIGKILLed while publishing; 0 deliveries
lost, 0 published twice, each rule fired once. Redis (the test's prefix) keeps the limits and
results; the queues are quorum queues and publishes are confirmed."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.conftest import REQUIRE_SERVICES
from tests.fleet import procs, rabbit
from tests.webhooks import processes
from tests.webhooks.receiving import github_headers, make_github
from webhooks import services
from webhooks.models import BusDelivery, BusMessage, Delivery, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def rabbit_node(tmp_path: Path) -> rabbit.RabbitNode:
    if not rabbit.available():
        if REQUIRE_SERVICES:
            pytest.fail("rabbitmq-server is missing (make test and .ci/run install it: .ci/system-packages)")
        pytest.skip("needs rabbitmq-server")
    node = rabbit.RabbitNode(tmp_path / "rabbitmq")
    yield node
    node.stop(signal.SIGKILL)


def send(base: str, n: int) -> requests.Response:
    body = json.dumps({"n": n, "action": "opened"}).encode()
    return requests.post(f"{base}/api/v1/webhooks/gh/auto", data=body, timeout=30,
                         headers={**github_headers(body, delivery=f"r-{n}"), "Content-Type": "application/json"})


def queue_types(node: rabbit.RabbitNode) -> dict[str, str]:
    out = processes.subprocess.run([rabbit.CTL, "-n", node.name, "list_queues", "name", "type", "-q"],
                                   env=node.env(), capture_output=True, text=True, timeout=60)
    return dict(line.split("\t")[:2] for line in out.stdout.splitlines() if "\t" in line)


def test_nothing_lost_or_doubled_when_rabbitmq_and_a_worker_fail(tmp_path: Path, postgres: None,
                                                                  rabbit_node: rabbit.RabbitNode) -> None:
    make_github()
    services.trigger_rule_create(data={"name": "all", "event_type": "*", "workflow": "log_event"})
    rabbit_node.start(tmp_path)
    env = processes.service_env(tmp_path, settings.REDIS_URL, publish_stuck_seconds=3,
                                publish_sweep_interval_seconds=1)
    env["CELERY_BROKER_URL"] = rabbit_node.url
    started: list[processes.Proc] = []
    accepted: list[int] = []

    def burst(start: int, count: int) -> None:
        for n in range(start, start + count):
            response = send(base, n)
            assert response.status_code == 202, response.text
            accepted.append(response.json()["delivery_id"])

    try:
        web, base = procs.gunicorn(env, tmp_path, workers=2)
        started.append(web)
        started.append(procs.beat(env, tmp_path))
        work = procs.worker(env, tmp_path)
        started.append(work)
        # A countdown travels through RabbitMQ's native delayed delivery (a topic exchange; the
        # worker declares its exchanges when it starts).
        processes.wait_until(lambda: "ready." in (tmp_path / "worker.log").read_text(), 60, "the worker")
        sent = time.monotonic()
        out = processes.subprocess.run(
            [processes.sys.executable, "-c", "from synthorg.celery import app; import django; django.setup(); "
             "print(app.send_task('synthorg.ping', args=['late'], countdown=2).get(timeout=60))"],
            cwd=processes.ROOT, env=env, capture_output=True, text=True, timeout=90)
        assert out.stdout.strip() == "pong:late", out.stderr[-2000:]
        assert time.monotonic() - sent >= 2
        burst(0, 10)
        # The broker stops during the burst (SIGTERM: Debian's RabbitMQ 3.10.8 does not bring a
        # single-node quorum queue back after a SIGKILL of the node, see README "Broker choice").
        rabbit_node.stop(signal.SIGTERM)
        burst(10, 10)  # stored and answered; their publication waits for the sweep
        rabbit_node.start(tmp_path)
        burst(20, 10)
        # Kill the worker while it publishes the next burst, then start another.
        burst(30, 20)
        work.stop(signal.SIGKILL)
        started.append(procs.worker(env, tmp_path, "worker-2"))
        burst(50, 10)

        def all_done() -> bool:
            published = Delivery.objects.filter(pk__in=accepted, publish_state=Delivery.PublishState.PUBLISHED)
            finished = WorkflowRun.objects.filter(status=WorkflowRun.Status.SUCCEEDED)
            return published.count() == len(accepted) and finished.count() == len(accepted)

        processes.wait_until(all_done, 180, "every delivery published and every run finished")
        time.sleep(3)  # anything published twice would show up now
        types = queue_types(rabbit_node)
    finally:
        for proc in reversed(started):
            proc.stop()
    assert types.get("celery") == "quorum", types
    assert len(set(accepted)) == 60
    assert BusMessage.objects.filter(channel="webhooks").count() == 60
    assert BusDelivery.objects.filter(subscriber="external_trigger_strategy").count() == 60
    runs = list(WorkflowRun.objects.values_list("event_id", flat=True))
    assert len(runs) == len(set(runs)) == 60
    assert not WorkflowRun.objects.exclude(status=WorkflowRun.Status.SUCCEEDED).exists()

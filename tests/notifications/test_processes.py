"""Exactly once, even when things fail (issue 16): a real Celery worker is SIGKILLed while it
sends an alert and the broker (a private redis-server) is stopped while problems open; the sweep
and a new worker finish the job, and the receiver sees every problem announced once per sink,
counted by distinct webhook-id (a resend after a lost answer carries the same id)."""
from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from integrations.health import health_record
from integrations.types.probing import HealthResult
from notifications import services
from notifications.models import Alert, Problem
from tests.e2e.embedded import free_port
from tests.notifications.conftest import http_connection, only_rule
from tests.peers.http_peer import HttpPeer, Reply
from tests.webhooks import processes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def _fail(connection: Any) -> None:
    for _ in range(3):
        health_record(connection_id=connection.pk, result=HealthResult("unhealthy", "refused", 5))


def _broker_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test process's broker is not the workers' one: every enqueue it tries is refused,
    as a stopped broker would, so only the sweep can send."""
    from notifications import tasks

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OSError("broker down")

    monkeypatch.setattr(tasks.alert_send_task, "apply_async", refused)


def test_worker_killed_mid_send_and_broker_stopped_announce_each_problem_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _broker_down(monkeypatch)
    # A transactional test may run after another flushed the data migration's default rules.
    only_rule(["connection.unhealthy"])
    with HttpPeer() as peer:
        # The first send hangs: the worker is killed while it waits for the answer.
        peer.script("/hook", Reply(200, b"ok", delay=60), Reply(200, b"ok"))
        receiver = http_connection(peer.url("/hook"), name="receiver")
        secret = services.sink_create(name="hook", kind="webhook", connection=receiver.name).shown_once[
            "signing_secret"]
        watched = [http_connection(f"http://127.0.0.1:9/{n}", name=f"svc-{n}") for n in range(2)]

        redis_port = free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        redis = processes.redis_server(redis_port, tmp_path)
        env = processes.service_env(tmp_path, redis_url)
        env.update({"SYNTHORG_ALERTS_SWEEP_SECONDS": "1", "SYNTHORG_ALERTS_LEASE_SECONDS": "4"})
        started = [redis, processes.beat(env, tmp_path)]
        try:
            work = processes.worker(env, tmp_path)
            started.append(work)
            _fail(watched[0])

            def hooks() -> list[Any]:
                with peer.lock:
                    return [r for r in peer.received if r.path == "/hook"]

            processes.wait_until(lambda: len(hooks()) >= 1, 60, "the worker to start sending")
            work.stop(signal.SIGKILL)  # mid-send: the receiver got the request, nobody got the answer
            redis.stop(signal.SIGKILL)  # and the broker goes too
            _fail(watched[1])  # a problem opens while the broker is down
            redis = processes.redis_server(redis_port, tmp_path)
            started.append(redis)
            started.append(processes.worker(env, tmp_path, "worker-2"))

            def all_sent() -> bool:
                return Alert.objects.filter(status=Alert.Status.SENT).count() == 2

            processes.wait_until(all_sent, 90, "both alerts sent")
        finally:
            for proc in reversed(started):
                proc.stop()
        received = hooks()

    verifier = Webhook(secret)
    ids = []
    for request in received:
        headers = {k.lower(): v for k, v in request.headers.items()}
        payload = verifier.verify(request.body, headers)
        ids.append((headers["webhook-id"], payload["data"]["problem"]["id"]))
    assert len(received) >= 3  # the killed send's request arrived, and was sent again
    distinct = set(ids)
    assert len(distinct) == 2  # ...with the same id: two announcements, one per problem
    assert sorted(problem for _, problem in distinct) == sorted(Problem.objects.values_list("pk", flat=True))
    assert json.loads(received[0].body)["id"] == ids[0][0]
    assert settings.REDIS_URL != redis_url

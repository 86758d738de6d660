"""Publication on #webhooks, the outbox sweep, ExternalTriggerStrategy, runs and workflows."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from synthorg import bus
from synthorg.http import TransientError
from tests.webhooks.receiving import github_body, github_headers, make_github, post
from webhooks import services
from webhooks.models import BusDelivery, BusMessage, Delivery, TriggerRule, WorkflowRun

pytestmark = pytest.mark.django_db


def receive(body: bytes, event: str = "pull_request", capture: Any = None) -> int:
    client = Client(REMOTE_ADDR="203.0.113.20")
    if capture is None:
        return post(client, "gh", "auto", body, github_headers(body, event=event)).json()["delivery_id"]
    with capture(execute=True):
        return post(client, "gh", "auto", body, github_headers(body, event=event)).json()["delivery_id"]


def rule(name: str = "r", event_type: str = "pull_request.*", conditions: Any = None, **extra: Any) -> TriggerRule:
    return services.trigger_rule_create(data={"name": name, "event_type": event_type,
                                              "conditions": conditions or [], "workflow": "log_event",
                                              "parameters": {}, **extra})


def test_publication_event_has_the_documented_fields(django_capture_on_commit_callbacks: Any) -> None:
    make_github()
    delivery_id = receive(github_body(action="opened"), capture=django_capture_on_commit_callbacks)
    message = BusMessage.objects.get(channel="webhooks")
    assert set(message.payload) == {"event_id", "connection_name", "connection_type", "event_type", "delivery_id",
                                    "payload", "payload_escaped", "received_at"}
    assert message.payload["delivery_id"] == delivery_id and message.payload["connection_type"] == "github"


def test_publishing_twice_hands_each_subscriber_the_event_once() -> None:
    make_github()
    seen: list[str] = []
    bus.subscribe("#webhooks", "test-recorder", lambda channel, event: seen.append(event["event_id"]))
    try:
        delivery_id = receive(github_body())
        assert services.delivery_publish(delivery_id=delivery_id) == "published"
        assert services.delivery_publish(delivery_id=delivery_id) == "not_claimed"
        Delivery.objects.filter(pk=delivery_id).update(publish_state=Delivery.PublishState.PENDING)
        assert services.delivery_publish(delivery_id=delivery_id) == "published"
    finally:
        bus._subscribers["webhooks"].pop("test-recorder")
    assert len(seen) == 1
    assert BusMessage.objects.count() == 1
    assert BusDelivery.objects.filter(subscriber="test-recorder").count() == 1


def test_a_failing_subscriber_is_retried_alone_on_the_next_publication() -> None:
    make_github()
    calls = {"n": 0}

    def flaky(channel: str, event: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")

    bus.subscribe("#webhooks", "test-flaky", flaky)
    try:
        delivery_id = receive(github_body())
        with pytest.raises(RuntimeError):
            services.delivery_publish(delivery_id=delivery_id)
        assert Delivery.objects.get(pk=delivery_id).publish_state == Delivery.PublishState.PENDING
        assert services.delivery_publish(delivery_id=delivery_id) == "published"
    finally:
        bus._subscribers["webhooks"].pop("test-flaky")
    assert calls["n"] == 2
    assert BusDelivery.objects.filter(subscriber="external_trigger_strategy").count() == 1


def test_sweep_publishes_what_the_broker_missed(settings: Any) -> None:
    make_github()
    with mock.patch("webhooks.dispatcher.send_batch", return_value=False):
        delivery_id = receive(github_body())
    Delivery.objects.filter(pk=delivery_id).update(received_at=timezone.now() - timedelta(seconds=30))
    result = services.publication_sweep()
    assert result["deliveries"] == 1
    assert Delivery.objects.get(pk=delivery_id).publish_state == Delivery.PublishState.PUBLISHED


def test_sweep_takes_back_a_publication_stuck_longer_than_the_bound(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"publish_stuck_seconds": 10}}
    make_github()
    delivery_id = receive(github_body())
    claimed = timezone.now() - timedelta(seconds=5)
    Delivery.objects.filter(pk=delivery_id).update(publish_state=Delivery.PublishState.PUBLISHING,
                                                   publish_claimed_at=claimed)
    assert services.publication_sweep()["deliveries"] == 0  # 5 s < 10 s: still someone's
    Delivery.objects.filter(pk=delivery_id).update(publish_claimed_at=timezone.now() - timedelta(seconds=11))
    assert services.publication_sweep()["deliveries"] == 1
    assert Delivery.objects.get(pk=delivery_id).publish_state == Delivery.PublishState.PUBLISHED


def test_matching_rule_fires_once_and_records_a_succeeded_run(django_capture_on_commit_callbacks: Any) -> None:
    make_github()
    rule("prs", "pull_request.opened", [{"path": "pull_request.base.ref", "op": "eq", "value": "main"}])
    rule("other", "issues")
    delivery_id = receive(github_body(action="opened", pull_request={"base": {"ref": "main"}}),
                          capture=django_capture_on_commit_callbacks)
    run = WorkflowRun.objects.get()
    assert run.rule_name == "prs" and run.delivery_id == delivery_id
    assert run.status == WorkflowRun.Status.SUCCEEDED and run.attempts == 1
    assert run.result["logged"] is True


@pytest.mark.parametrize(("pattern", "conditions", "fires"), [
    ("pull_request", [], True),
    ("pull_request.*", [], True),
    ("pull_request.closed", [], False),
    ("pull_*", [{"path": "pull_request.labels.0", "op": "in", "value": ["bug", "x"]}], True),
    ("*", [{"path": "pull_request.base.ref", "op": "ne", "value": "main"}], False),
    ("*", [{"path": "pull_request.draft", "op": "exists", "value": False}], True),
    ("*", [{"path": "pull_request.base.ref", "op": "glob", "value": "ma*"}], True),
])
def test_rule_matching(pattern: str, conditions: Any, fires: bool) -> None:
    make_github()
    rule("r", pattern, conditions)
    from webhooks.services import ExternalTriggerStrategy

    event = {"event_id": "e", "connection_name": "gh", "event_type": "pull_request",
             "payload": {"action": "opened", "pull_request": {"base": {"ref": "main"}, "labels": ["bug"]}}}
    assert bool(ExternalTriggerStrategy().matching_rules(event)) is fires


def test_rule_for_another_connection_does_not_fire() -> None:
    make_github()
    make_github("gh2")
    rule("only-gh2", "*", connection="gh2")
    from webhooks.services import ExternalTriggerStrategy

    event = {"event_id": "e", "connection_name": "gh", "event_type": "push", "payload": {}}
    assert ExternalTriggerStrategy().matching_rules(event) == []


@pytest.mark.parametrize("conditions", [
    "not a list", [{"path": "a", "op": "eval", "value": 1}], [{"path": "", "op": "eq", "value": 1}],
    [{"path": "a", "op": "in", "value": "x"}], [{"path": "a", "op": "eq"}], [{"path": "a", "op": "eq", "value": 1,
                                                                             "code": "1"}],
])
def test_invalid_conditions_are_refused_on_save(conditions: Any) -> None:
    from synthorg.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as raised:
        rule("bad", "*", conditions)
    assert "conditions" in raised.value.errors


def test_unknown_workflow_is_refused_on_save() -> None:
    from synthorg.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        services.trigger_rule_create(data={"name": "x", "event_type": "*", "workflow": "rm_rf"})


def test_transient_failure_retries_then_fails_at_max_attempts(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"workflow_max_attempts": 2}}
    make_github()
    rule("r", "*")
    from webhooks.workflows import Workflow

    def down(event: Any, parameters: Any) -> dict[str, Any]:
        raise TransientError("down", None)

    failing = Workflow(name="log_event", run=down, validate=lambda p: None)
    with mock.patch("webhooks.services.get_workflow", return_value=failing), \
            mock.patch("webhooks.tasks.workflow_run_enqueue", return_value=True):
        delivery_id = receive(github_body())
        services.delivery_publish(delivery_id=delivery_id)
        run = WorkflowRun.objects.get()
        first = services.workflow_run_execute(run_id=run.pk)
        assert first.status == "pending" and first.retry_in == 5
        second = services.workflow_run_execute(run_id=run.pk)
    assert second.status == "failed"
    run.refresh_from_db()
    assert run.attempts == 2 and "TransientError" in run.error


def test_http_forward_posts_the_event_with_the_connections_token(settings: Any) -> None:
    from integrations import services as connection_services
    from tests.peers.http_peer import HttpPeer, Reply

    with HttpPeer() as peer:
        peer.script("/hook", Reply(200, b"{}"))
        connection_services.connection_create(name="sink", connection_type="generic_http",
                                              credentials={"base_url": peer.url("/"), "token": "sink-token"})
        make_github()
        rule("fwd", "*", workflow="http_forward", parameters={"connection": "sink", "path": "/hook"})
        delivery_id = receive(github_body(n=7))
        services.delivery_publish(delivery_id=delivery_id)
        run = WorkflowRun.objects.get()
        services.workflow_run_execute(run_id=run.pk)
        request = peer.received[0]
    run.refresh_from_db()
    assert run.status == WorkflowRun.Status.SUCCEEDED, run.error
    assert request.path == "/hook" and request.headers["Authorization"] == "Bearer sink-token"
    assert json.loads(request.body)["payload"]["n"] == 7


def test_sweep_interval_follows_the_configuration() -> None:
    from synthorg.config import load
    from synthorg.periodic import beat_schedule

    config = load(None, environ={}, overrides={"webhooks": {"publish_sweep_interval_seconds": 7}})
    entry = beat_schedule(config)["synthorg:webhooks-publication-sweep"]
    assert entry["task"] == "webhooks.publication_sweep"
    assert entry["schedule"].run_every.total_seconds() == 7

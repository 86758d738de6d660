"""GET /metrics (issue 15 §4) in-process: who may read it, what it shows, bounded labels."""
from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from synthorg import metrics
from synthorg.config import ConfigInvalid, load

pytestmark = pytest.mark.django_db


def test_served_to_loopback_and_refused_elsewhere(client: Client) -> None:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    for family in ("synthorg_outbox_backlog", "synthorg_connections", "synthorg_beat_leader",
                   "synthorg_oauth_tokens_reauthorization_required", "synthorg_metrics_database_up 1.0"):
        assert family in text
    refused = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert "synthorg_" not in refused.content.decode()
    assert client.post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


def test_bearer_token_from_the_environment(client: Client, monkeypatch: pytest.MonkeyPatch,
                                           integrations_config: Any) -> None:
    integrations_config({"metrics": {"allowed_networks": [], "token_env": "TEST_METRICS_TOKEN"}})
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    monkeypatch.setenv("TEST_METRICS_TOKEN", "s3cret-token")
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_allowed_networks_behind_a_trusted_proxy(client: Client, integrations_config: Any) -> None:
    integrations_config({"trusted_proxies": ["127.0.0.1/32"], "metrics": {"allowed_networks": ["192.0.2.0/24"]}})
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 403


def test_allowed_networks_are_validated() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load(None, environ={}, overrides={"metrics": {"allowed_networks": ["10.0.0.0/8", "nope"]}})
    assert [p.path for p in caught.value.problems] == ["integrations.metrics.allowed_networks[1]"]


def test_connection_names_only_when_opted_in(client: Client, integrations_config: Any) -> None:
    metrics.webhook_answered(connection_type="github", connection_name="secret-project-x", status=202,
                             duplicate=False, seconds=0.01)
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'synthorg_webhook_deliveries_total{connection="",connection_type="github",outcome="accepted"}' in text
    assert "secret-project-x" not in text
    integrations_config({"metrics": {"per_connection": True}})
    metrics.webhook_answered(connection_type="github", connection_name="secret-project-x", status=202,
                             duplicate=False, seconds=0.01)
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'connection="secret-project-x"' in text


def value(name: str, **labels: str) -> float:
    return metrics.registry().get_sample_value(name, labels) or 0.0


def test_the_receiver_and_the_pipeline_are_counted() -> None:
    from tests.webhooks.receiving import github_body, github_headers, make_github, post
    from webhooks import services
    from webhooks.models import WorkflowRun

    make_github()
    services.trigger_rule_create(data={"name": "all", "event_type": "*", "workflow": "log_event"})
    accepted = {"connection_type": "github", "outcome": "accepted", "connection": ""}
    duplicate = {**accepted, "outcome": "duplicate"}
    rejected = {"connection_type": "github", "reason": "bad_signature", "connection": ""}
    start = {key: value(*key) for key in [
        ("synthorg_webhook_deliveries_total",), ("synthorg_webhook_receive_seconds_count",),
        ("synthorg_webhook_publication_lag_seconds_count",), ("synthorg_workflow_run_lag_seconds_count",)]}
    before = (value("synthorg_webhook_deliveries_total", **accepted), value("synthorg_webhook_deliveries_total",
                                                                             **duplicate))
    runs_before = value("synthorg_workflow_runs_total", outcome="succeeded")
    client = Client(REMOTE_ADDR="203.0.113.20")
    body = github_body(action="opened")
    delivery_id = post(client, "gh", "auto", body, github_headers(body)).json()["delivery_id"]
    assert post(client, "gh", "auto", body, github_headers(body)).json()["status"] == "duplicate"
    bad_before = value("synthorg_webhook_rejections_total", **rejected)
    assert post(client, "gh", "auto", body, {**github_headers(body, delivery="d-2"),
                                             "X-Hub-Signature-256": "sha256=" + "0" * 64}).status_code == 401
    assert value("synthorg_webhook_deliveries_total", **accepted) == before[0] + 1
    assert value("synthorg_webhook_deliveries_total", **duplicate) == before[1] + 1
    assert value("synthorg_webhook_rejections_total", **rejected) == bad_before + 1
    assert value("synthorg_webhook_receive_seconds_count") == start[("synthorg_webhook_receive_seconds_count",)] + 3

    assert services.delivery_publish(delivery_id=delivery_id) == "published"
    assert value("synthorg_webhook_publication_lag_seconds_count") == start[
        ("synthorg_webhook_publication_lag_seconds_count",)] + 1
    run = WorkflowRun.objects.get(delivery_id=delivery_id)
    assert services.workflow_run_execute(run_id=run.pk).status == WorkflowRun.Status.SUCCEEDED
    assert value("synthorg_workflow_run_lag_seconds_count") == start[("synthorg_workflow_run_lag_seconds_count",)] + 1
    assert value("synthorg_workflow_runs_total", outcome="succeeded") == runs_before + 1
    assert value("synthorg_outbox_backlog", kind="deliveries") == 0


@pytest.mark.django_db(transaction=True)
def test_the_worker_can_serve_metrics_itself(integrations_config: Any) -> None:
    import requests

    from tests.e2e.embedded import free_port

    port = free_port()
    metrics.serve_in_background(f"127.0.0.1:{port}")
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200 and "synthorg_outbox_backlog" in answer.text
    assert requests.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404
    integrations_config({"metrics": {"allowed_networks": []}})
    assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 403


def test_unknown_connection_names_never_become_series(client: Client, integrations_config: Any) -> None:
    # Per-connection series are for the operator's connections: a name from the URL that no
    # connection has would let anyone add a series per request (unbounded memory and /metrics).
    integrations_config({"metrics": {"per_connection": True}})
    response = client.post("/api/v1/webhooks/nosuch-conn-7f3a/push", data=b"{}", content_type="application/json")
    assert response.status_code == 401  # unknown connections are answered like bad signatures
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "nosuch-conn-7f3a" not in text

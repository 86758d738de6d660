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

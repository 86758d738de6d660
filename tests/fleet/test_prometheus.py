"""A real Prometheus scrapes GET /metrics of gunicorn (deploy/gunicorn.conf.py, 2 workers) while a
real Celery worker, the test process (an OAuth refresh against the OIDC peer, a health check) and
webhook traffic write metrics into the shared multiprocess directory. Through Prometheus's HTTP
API, every query of deploy/grafana/synthorg.json and every expression of
deploy/prometheus/alerts.yml returns data (the alerts are driven into firing), and Prometheus
loaded the rules without error; `promtool check rules` validates the file (issue 15 §4)."""
from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from integrations import services as connection_services
from integrations.health import connection_probe
from integrations.models import Connection
from oauthflow import services as oauth_services
from oauthflow.models import OAuthToken
from tests.fleet import procs, prom
from tests.peers.oidc_peer import OIDCClient, OIDCPeer
from tests.webhooks import processes
from tests.webhooks.receiving import github_headers, make_github
from webhooks import services
from webhooks.models import Delivery, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_promtool_accepts_the_rules() -> None:
    out = subprocess.run([prom.binary("promtool"), "check", "rules", str(prom.ALERTS)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 5 rules found" in out.stdout


def send(base: str, n: int, *, forged: bool = False) -> requests.Response:
    body = json.dumps({"n": n, "action": "opened"}).encode()
    headers = {**github_headers(body, delivery=f"p-{n}"), "Content-Type": "application/json"}
    if forged:
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    return requests.post(f"{base}/api/v1/webhooks/gh/auto", data=body, headers=headers, timeout=30)


def test_every_dashboard_query_and_alert_returns_data(tmp_path: Path, postgres: None, oidc: OIDCPeer,
                                                      oauthlib_loopback_http: Any) -> None:
    make_github()
    services.trigger_rule_create(data={"name": "all", "event_type": "*", "workflow": "log_event"})
    env = processes.service_env(tmp_path, settings.REDIS_URL)
    assert env["PROMETHEUS_MULTIPROC_DIR"]  # shared with this process (settings set it)
    started: list[processes.Proc] = []
    try:
        web, base = procs.gunicorn(env, tmp_path, workers=2)
        started.append(web)
        prometheus, prom_url = prom.start([base.removeprefix("http://")], tmp_path)
        started.append(prometheus)

        processes.wait_until(lambda: prom.has_data(prom_url, "synthorg_outbox_backlog"), 30, "the first scrape")
        # No worker yet: the outbox grows, and what waits is made old (a stalled publication).
        for n in range(10):
            assert send(base, n).status_code == 202
        Delivery.objects.update(received_at=timezone.now() - timedelta(seconds=300))
        assert send(base, 0).json()["status"] == "duplicate"
        assert send(base, 999, forged=True).status_code == 401
        for n in range(10, 20):
            assert send(base, n).status_code == 202
            time.sleep(0.5)
        backlog = dict(prom.alert_rules())["SynthorgOutboxBacklogGrowing"]
        try:
            processes.wait_until(lambda: prom.has_data(prom_url, backlog), 30, "the backlog alert's expression")
        except AssertionError:
            raise AssertionError([prom.query(prom_url, q) for q in (
                "synthorg_outbox_backlog", "synthorg_outbox_oldest_seconds",
                'deriv(synthorg_outbox_backlog{kind="deliveries"}[10m])')]) from None

        # A worker publishes (300 s late: the lag alert) and runs everything.
        started.append(procs.worker(env, tmp_path))
        processes.wait_until(
            lambda: WorkflowRun.objects.filter(status=WorkflowRun.Status.SUCCEEDED).count() == 20, 120, "20 runs")

        # An OAuth refresh against the real peer, a token that needs the operator, a health check.
        client = oidc.register(OIDCClient(client_id="prom-client", client_secret="prom-secret-0123456789",
                                          redirect_uris=("http://testserver/api/v1/oauth/callback",)))
        oauth = connection_services.connection_create(name="prom-oauth", connection_type="oauth_app", credentials={
            "client_id": client.client_id, "client_secret": client.client_secret,
            "auth_url": oidc.authorization_endpoint, "token_url": oidc.token_endpoint, "scopes": ["api:read"]})
        oauth_services.client_credentials_connect(connection_name=oauth.name)
        token = OAuthToken.objects.get(connection=oauth)
        assert oauth_services.token_refresh(token_id=token.pk, force=True).result == "refreshed"
        # Health checks are periodic: a new series needs a second check after a scrape for a rate.
        assert connection_probe(connection=oauth) is not None
        time.sleep(2.5)
        assert connection_probe(connection=oauth) is not None
        OAuthToken.objects.filter(pk=token.pk).update(status=OAuthToken.Status.REAUTHORIZATION_REQUIRED)
        Connection.objects.filter(name="gh").update(health_status=Connection.HealthStatus.UNHEALTHY)
        # Steady traffic while everything runs: every rate() sees increases between scrapes.
        for n in range(20, 30):
            assert send(base, n).status_code == 202
            time.sleep(0.5)

        def everything_has_data() -> list[str]:
            missing = [f"{title}: {expr}" for title, expr in prom.dashboard_queries()
                       if not prom.has_data(prom_url, expr)]
            missing += [f"alert {name}: {expr}" for name, expr in prom.alert_rules()
                        if name != "SynthorgOutboxBacklogGrowing" and not prom.has_data(prom_url, expr)]
            everything_has_data.missing = missing  # type: ignore[attr-defined]
            return missing

        try:
            processes.wait_until(lambda: not everything_has_data(), 30, "every query to return data")
        except AssertionError:
            raise AssertionError("no data for:\n" + "\n".join(everything_has_data.missing)) from None  # type: ignore[attr-defined]
        rules = requests.get(prom_url + "/api/v1/rules", timeout=10).json()["data"]["groups"][0]["rules"]
        assert {rule["name"] for rule in rules} == {name for name, _ in prom.alert_rules()}
        assert all(rule["health"] == "ok" for rule in rules), rules
        # The labels hold no connection name (per_connection is off), no secret, no payload.
        text = requests.get(base + "/metrics", timeout=10).text
        assert 'connection="gh"' not in text and "prom-secret" not in text and '"n"' not in text
    finally:
        for proc in reversed(started):
            proc.stop()


def test_compose_monitoring_profile_is_wired_to_the_dashboard_and_rules() -> None:
    import yaml

    compose = yaml.safe_load((prom.ROOT / "docker-compose.yml").read_text())["services"]
    assert compose["prometheus"]["profiles"] == compose["grafana"]["profiles"] == ["monitoring"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in compose["prometheus"]["volumes"]
    assert "./deploy/grafana/synthorg.json:/var/lib/grafana/dashboards/synthorg.json:ro" in compose["grafana"]["volumes"]
    assert compose["worker"]["environment"]["SYNTHORG_WORKER_METRICS_BIND"] == "0.0.0.0:9808"
    config = yaml.safe_load((prom.ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {"synthorg-web": ["web:8000"], "synthorg-worker": ["worker:9808"]}
    assert all(job["authorization"]["credentials_file"] == "/prometheus/metrics-token"
               for job in config["scrape_configs"])
    out = subprocess.run([prom.binary("promtool"), "check", "config", "--syntax-only",
                          str(prom.ROOT / "deploy" / "prometheus" / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr

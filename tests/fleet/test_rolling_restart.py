"""Rolling restarts lose nothing (issue 15 §3): 2 gunicorn web servers (deploy/gunicorn.conf.py,
2 workers each), 2 Celery workers and 2 beats on PostgreSQL + Redis take a steady stream of signed
deliveries (a sender that, like a load balancer, skips a server that refuses connections and
takes a web server out of rotation before its graceful restart) while
the test process uses 4 OAuth tokens (client credentials at the OIDC peer, 30 s tokens refreshed
15 s before expiry by the token manager). Every process is restarted one after another with
SIGTERM, and one web server once with SIGKILL: 0 deliveries lost, 0 published twice, 0 failed
client requests other than resets during the SIGKILL (retried into a `duplicate`), every token
use answered, and every refresh the peer saw stored exactly once."""
from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connections
from urllib3.exceptions import NewConnectionError

from integrations import services as connection_services
from oauthflow import services as oauth_services
from oauthflow.models import OAuthToken
from tests.fleet import procs
from tests.peers.oidc_peer import OIDCClient, OIDCPeer
from tests.webhooks import processes
from tests.webhooks.receiving import github_headers, make_github
from webhooks import services
from webhooks.models import BusDelivery, BusMessage, Delivery, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def refused(exc: requests.ConnectionError) -> bool:
    """The connection was never made (the server is not listening): a balancer tries another."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


class Sender(threading.Thread):
    """Signed deliveries, one every 0.1 s, round robin over the live servers."""

    def __init__(self, servers: list[str]) -> None:
        super().__init__(daemon=True)
        self.servers = servers
        self.stop_event = threading.Event()
        self.killing = threading.Event()  # set while a SIGKILL's resets are expected
        self.accepted: dict[int, int] = {}  # n -> delivery id
        self.failures: list[str] = []
        self.resets = 0
        # Servers taken out of rotation before a graceful restart, as a balancer does: a listener
        # closed by SIGTERM resets the connections still waiting in its accept queue.
        self.draining: set[str] = set()

    def post(self, n: int) -> requests.Response | None:
        body = json.dumps({"n": n, "action": "opened"}).encode()
        headers = {**github_headers(body, delivery=f"roll-{n}"), "Content-Type": "application/json"}
        for attempt in range(40):
            base = self.servers[(n + attempt) % len(self.servers)]
            if base in self.draining:
                continue
            try:
                return requests.post(f"{base}/api/v1/webhooks/gh/auto", data=body, headers=headers, timeout=30)
            except requests.ConnectionError as exc:
                if refused(exc):
                    time.sleep(0.05)
                    continue
                if self.killing.is_set():
                    self.resets += 1  # the same delivery again: the receiver answers `duplicate`
                    continue
                self.failures.append(f"delivery {n}: {type(exc).__name__}: {exc}")
                return None
        self.failures.append(f"delivery {n}: no server answered")
        return None

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            response = self.post(n)
            if response is not None:
                if response.status_code in (200, 202) and "delivery_id" in response.json():
                    self.accepted[n] = response.json()["delivery_id"]
                else:
                    self.failures.append(f"delivery {n}: {response.status_code} {response.text[:200]}")
            n += 1
            time.sleep(0.1)


class TokenUser(threading.Thread):
    """Uses each OAuth connection's token every 0.3 s, as a workflow or a provider would."""

    def __init__(self, connection_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.connection_ids = connection_ids
        self.stop_event = threading.Event()
        self.uses = 0
        self.failures: list[str] = []

    def run(self) -> None:
        from integrations.models import Connection

        try:
            while not self.stop_event.is_set():
                for connection in Connection.objects.filter(pk__in=self.connection_ids):
                    try:
                        assert oauth_services.get_access_token(connection)
                        self.uses += 1
                    except Exception as exc:  # every failure is reported by the test
                        self.failures.append(f"{connection.name}: {type(exc).__name__}: {exc}")
                time.sleep(0.3)
        finally:
            connections.close_all()


def test_rolling_restart_of_every_process_loses_nothing(tmp_path: Path, postgres: None, oidc: OIDCPeer,
                                                       oauthlib_loopback_http: Any, integrations_config: Any) -> None:
    integrations_config({"oauth": {"auto_refresh_threshold_seconds": 15}})
    make_github()
    services.trigger_rule_create(data={"name": "all", "event_type": "*", "workflow": "log_event"})
    clients, tokens = [], []
    for index in range(4):
        client = oidc.register(OIDCClient(client_id=f"roll-{index}", client_secret=f"roll-secret-{index}-0123456789",
                                          redirect_uris=("http://testserver/api/v1/oauth/callback",)))
        connection = connection_services.connection_create(
            name=f"roll-oauth-{index}", connection_type="oauth_app", credentials={
                "client_id": client.client_id, "client_secret": client.client_secret,
                "auth_url": oidc.authorization_endpoint, "token_url": oidc.token_endpoint, "scopes": ["api:read"]})
        oauth_services.client_credentials_connect(connection_name=connection.name)
        clients.append(client.client_id)
        tokens.append(OAuthToken.objects.get(connection=connection))
    versions = {token.pk: token.version for token in tokens}
    log_start = len(oidc.token_request_log())

    env = processes.service_env(tmp_path, settings.REDIS_URL, rate_limit_rpm=0, flood_rpm_per_ip=0,
                                publish_stuck_seconds=3, publish_sweep_interval_seconds=1)
    env.update({"SYNTHORG_CFG__OAUTH__AUTO_REFRESH_THRESHOLD_SECONDS": "15",
                "SYNTHORG_CFG__BEAT__TAKEOVER_SECONDS": "3"})
    ports = {"web-a": procs.restartable_port(), "web-b": procs.restartable_port()}
    running: dict[str, processes.Proc] = {}
    generation = {"n": 0}

    def start(role: str) -> None:
        generation["n"] += 1
        name = f"{role}-{generation['n']}"
        if role.startswith("web"):
            running[role], _ = procs.gunicorn(env, tmp_path, name=name, workers=2, port=ports[role])
        elif role.startswith("worker"):
            running[role] = procs.worker(env, tmp_path, name=name)
        else:
            running[role] = procs.beat(env, tmp_path, name=name)

    roles = ["web-a", "web-b", "worker-1", "worker-2", "beat-1", "beat-2"]
    sender = Sender([f"http://127.0.0.1:{ports['web-a']}", f"http://127.0.0.1:{ports['web-b']}"])
    user = TokenUser([token.connection_id for token in tokens])
    try:
        for role in roles:
            start(role)
        sender.start()
        user.start()
        time.sleep(5)
        for role in roles:  # one after another, gracefully
            server = f"http://127.0.0.1:{ports[role]}" if role in ports else None
            if server:
                sender.draining.add(server)
                time.sleep(1)  # requests in flight finish; new ones go to the other server
            running[role].stop(signal.SIGTERM)
            start(role)
            sender.draining.discard(server or "")
            time.sleep(3)
        sender.killing.set()
        running["web-a"].stop(signal.SIGKILL)
        start("web-a")
        time.sleep(3)
        sender.killing.clear()
        time.sleep(20)  # more traffic, and a token cycle, on the restarted fleet
        sender.stop_event.set()
        user.stop_event.set()
        sender.join(60)
        user.join(60)
        accepted = set(sender.accepted.values())

        def all_done() -> bool:
            published = Delivery.objects.filter(pk__in=accepted, publish_state=Delivery.PublishState.PUBLISHED)
            finished = WorkflowRun.objects.filter(status=WorkflowRun.Status.SUCCEEDED)
            return published.count() == len(accepted) and finished.count() == len(accepted)

        processes.wait_until(all_done, 120, "every delivery published and every run finished")
        time.sleep(3)
    finally:
        sender.stop_event.set()
        user.stop_event.set()
        for proc in running.values():
            proc.stop()
    assert sender.failures == [] and user.failures == [], (sender.failures[:5], user.failures[:5])
    assert len(accepted) >= 300 and user.uses >= 100
    assert Delivery.objects.count() == len(accepted)  # every retry after a reset was a duplicate
    assert BusMessage.objects.filter(channel="webhooks").count() == len(accepted)
    assert BusDelivery.objects.filter(subscriber="external_trigger_strategy").count() == len(accepted)
    runs = list(WorkflowRun.objects.values_list("event_id", flat=True))
    assert len(runs) == len(set(runs)) == len(accepted)
    # Every refresh the peer answered was stored exactly once: a claim and a write each.
    requests_by_client = {client: 0 for client in clients}
    for entry in oidc.token_request_log()[log_start:]:
        if entry.get("client_id") in requests_by_client:
            requests_by_client[entry["client_id"]] += 1
    for token, client in zip(tokens, clients, strict=True):
        token.refresh_from_db()
        assert requests_by_client[client] >= 1, requests_by_client
        assert token.version - versions[token.pk] == 2 * requests_by_client[client], (client, requests_by_client)

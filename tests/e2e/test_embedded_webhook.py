"""A signed webhook reaches a workflow run through `make run`'s own processes (web, worker, beat)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.e2e.embedded import embedded_service
from webhooks.verifiers import sign_github

pytestmark = pytest.mark.e2e


def test_signed_webhook_reaches_a_workflow_run(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    with embedded_service(var_dir) as service:
        auth = {"Authorization": f"Token {service.operator_token()}"}
        created = requests.post(service.url("/api/v1/connections"), headers=auth, timeout=10, json={
            "name": "gh", "connection_type": "github",
            "credentials": {"token": "ghp_e2e", "signing_secret": "e2e-signing-secret"}})
        assert created.status_code == 201, created.text
        rule = requests.post(service.url("/api/v1/webhooks/triggers"), headers=auth, timeout=10, json={
            "name": "prs", "event_type": "pull_request.opened", "workflow": "log_event"})
        assert rule.status_code == 201, rule.text
        body = json.dumps({"action": "opened", "number": 1}).encode()
        headers = {**sign_github(b"e2e-signing-secret", body, event="pull_request"),
                   "Content-Type": "application/json"}
        receipt = requests.post(service.url("/api/v1/webhooks/gh/auto"), data=body, headers=headers, timeout=10)
        assert receipt.status_code == 202, receipt.text
        delivery_id = receipt.json()["delivery_id"]

        def finished_run() -> dict | None:
            runs = requests.get(service.url("/api/v1/webhooks/runs?rule=prs"), headers=auth, timeout=10).json()
            done = [r for r in runs["results"] if r["status"] == "succeeded"]
            return done[0] if done else None

        run = service.wait_for(finished_run, 90, "a succeeded workflow run")
        assert run["delivery"] == delivery_id and run["event_type"] == "pull_request"
        activity = requests.get(service.url("/api/v1/webhooks/gh/activity"), headers=auth, timeout=10).json()
        assert activity["results"][0]["published_at"] and activity["results"][0]["runs"] == 1

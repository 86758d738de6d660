"""`make run`'s own beat and worker probe a connection on schedule and record the results."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.e2e.embedded import embedded_service
from tests.peers.http_peer import HttpPeer

pytestmark = pytest.mark.e2e


def test_embedded_beat_and_worker_probe_on_schedule(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    with HttpPeer() as peer, embedded_service(var_dir, SYNTHORG_CFG__HEALTH__SWEEP_INTERVAL_SECONDS="1") as service:
        token = service.operator_token()
        headers = {"Authorization": f"Token {token}"}
        created = requests.post(service.url("/api/v1/connections"), headers=headers, timeout=10, json={
            "name": "local-api", "connection_type": "generic_http",
            "credentials": {"base_url": peer.url("/status/200"), "token": "e2e-token-1"},
            "health_check": {"interval_seconds": 10},
        })
        assert created.status_code == 201, created.text

        def results() -> int:
            with service.db() as db:
                rows = db.execute(
                    "SELECT e.status FROM integrations_healthevent e JOIN integrations_connection c "
                    "ON c.id = e.connection_id WHERE c.name = 'local-api'").fetchall()
            return len(rows) if len(rows) >= 2 and {r[0] for r in rows} == {"healthy"} else 0

        # Two results: the first sweep after creation, then again after the connection's own interval.
        service.wait_for(results, 90, "two scheduled health results")
        assert [r.method for r in peer.received][:2] == ["HEAD", "HEAD"]
        assert peer.received[0].headers["Authorization"] == "Bearer e2e-token-1"

        listing = requests.get(service.url("/api/v1/integrations/health"), headers=headers, timeout=10).json()
        row = next(r for r in listing["results"] if r["name"] == "local-api")
        assert row["status"] == "healthy" and row["checked_at"]

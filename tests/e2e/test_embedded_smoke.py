"""`make run`'s process tree, end to end: web, a real worker and a real beat on the embedded default."""
from __future__ import annotations

import signal
import stat
from pathlib import Path

import pytest
import requests

from tests.e2e.embedded import embedded_service, processes_using

pytestmark = pytest.mark.e2e


def test_embedded_default_serves_works_and_stops_cleanly(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    with embedded_service(var_dir, SYNTHORG_CFG__SCHEDULER__HEARTBEAT_INTERVAL_SECONDS="1") as service:
        # The development key was generated before anything started, readable by its owner only.
        key_file = var_dir / "dev-master.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        log = (var_dir / "embedded.log").read_text()
        assert "DEVELOPMENT master key" in log
        assert f"{service.base_url}/admin/" in log and f"{service.base_url}/api/docs/" in log
        assert key_file.read_text() not in log

        # Log in to the API with the generated operator account.
        token = service.operator_token()
        audit = requests.get(service.url("/api/v1/audit-events"), headers={"Authorization": f"Token {token}"},
                             timeout=10)
        assert audit.status_code == 200
        assert requests.get(service.url("/api/v1/audit-events"), timeout=10).status_code == 401

        # A task round-trips through the filesystem broker and the real worker.
        ping = service.manage("service_ping", "--timeout", "30")
        assert ping.returncode == 0, ping.stderr
        assert "pong from a worker" in ping.stdout

        # The real beat runs the periodic heartbeat again and again.
        def heartbeats() -> int:
            with service.db() as db:
                row = db.execute("SELECT count FROM synthorg_serviceheartbeat WHERE name = 'beat'").fetchone()
            return row[0] if row and row[0] >= 2 else 0

        assert service.wait_for(heartbeats, 60, "two heartbeats from beat") >= 2

        pids = processes_using(var_dir)
        assert len(pids) >= 4  # runner, web, worker (+ pool), beat
        service.process.send_signal(signal.SIGINT)
        assert service.process.wait(timeout=40) == 0
    assert processes_using(var_dir) == []
    assert "stopped." in (var_dir / "embedded.log").read_text()


def test_second_start_reuses_key_and_operator(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    with embedded_service(var_dir) as service:
        first_key = (var_dir / "dev-master.key").read_bytes()
        first_token = service.operator_token()
    with embedded_service(var_dir) as service:
        assert (var_dir / "dev-master.key").read_bytes() == first_key
        assert service.operator_token() == first_token
    assert processes_using(var_dir) == []

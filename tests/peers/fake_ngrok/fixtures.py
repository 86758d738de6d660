"""`fake_ngrok`: a private copy of the fake agent per test, configured as the tunnel's agent path."""
from __future__ import annotations

import json
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

AGENT_SOURCE = Path(__file__).with_name("agent.py")


@dataclass
class FakeNgrok:
    path: Path
    record_file: Path

    def events(self) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        return [json.loads(line) for line in self.record_file.read_text().splitlines() if line.strip()]


@pytest.fixture
def fake_ngrok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNgrok]:
    """An executable `ngrok` in this test's tmp dir (own copy: pyngrok keys processes by path)."""
    agent = tmp_path / "bin" / "ngrok"
    agent.parent.mkdir()
    agent.write_text(f"#!{sys.executable}\n" + AGENT_SOURCE.read_text())
    agent.chmod(agent.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    record = tmp_path / "fake-ngrok.jsonl"
    monkeypatch.setenv("FAKE_NGROK_RECORD", str(record))
    yield FakeNgrok(path=agent, record_file=record)
    from pyngrok import ngrok, process

    if process.is_process_running(str(agent)):
        ngrok.kill(ngrok.conf.PyngrokConfig(ngrok_path=str(agent)))

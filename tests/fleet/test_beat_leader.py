"""Two real beat processes on PostgreSQL + Redis (issue 15 §1): one leads, the other stands by;
the leader is SIGKILLed and the standby takes over within integrations.beat.takeover_seconds;
every periodic task fires once per interval, none twice, and no interval is skipped twice in a
row. Then the new leader is stopped gracefully and a restarted beat takes over the same way."""
from __future__ import annotations

import re
import signal
import socket
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from synthorg.beat import leader_now
from synthorg.models import ServiceHeartbeat
from tests.webhooks import processes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

INTERVAL = 2  # the heartbeat task's interval here
TAKEOVER = 3  # integrations.beat.takeover_seconds (its lower bound)
SENT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Sending due task (\S+)", re.M)


def fires(log_dir: Path, names: list[str]) -> list[tuple[datetime, str, str]]:
    """(time, task, beat) for every task send in the beats' logs, in time order."""
    found = []
    for name in names:
        if not (log_dir / f"{name}.log").exists():
            continue
        text = (log_dir / f"{name}.log").read_text(errors="replace")
        for stamp, task in SENT.findall(text):
            found.append((datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f"), task, name))
    return sorted(found)


def beat(env: dict[str, str], log_dir: Path, name: str) -> processes.Proc:
    return processes.Proc(name, [processes.sys.executable, "-m", "celery", "-A", "synthorg", "beat",
                                 "--loglevel", "INFO", "-s", str(log_dir / f"{name}-schedule")], env, log_dir)


def identity(proc: processes.Proc) -> str:
    return f"{socket.gethostname()}:{proc.process.pid}"


def test_two_beats_one_leader_takeover_within_bound_each_interval_fired_once(
        tmp_path: Path, postgres: None) -> None:
    env = processes.service_env(tmp_path, settings.REDIS_URL)
    env["SYNTHORG_CFG__SCHEDULER__HEARTBEAT_INTERVAL_SECONDS"] = str(INTERVAL)
    env["SYNTHORG_CFG__BEAT__TAKEOVER_SECONDS"] = str(TAKEOVER)
    started: list[processes.Proc] = []
    names = ["beat-a", "beat-b", "beat-c"]
    try:
        started.append(processes.worker(env, tmp_path))
        first = beat(env, tmp_path, "beat-a")
        started.append(first)
        processes.wait_until(lambda: leader_now() == identity(first), 60, "beat-a to lead")
        second = beat(env, tmp_path, "beat-b")
        started.append(second)
        processes.wait_until(lambda: "standby" in (tmp_path / "beat-b.log").read_text() or
                             "Starting..." in (tmp_path / "beat-b.log").read_text(), 60, "beat-b to start")
        time.sleep(4 * INTERVAL)  # both run: only beat-a may send
        assert leader_now() == identity(first)
        assert {beat_name for _, _, beat_name in fires(tmp_path, names)} == {"beat-a"}

        first.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        processes.wait_until(lambda: leader_now() == identity(second), TAKEOVER + 2, "beat-b to take over")
        took = time.monotonic() - killed_at
        assert took <= TAKEOVER, f"takeover took {took:.1f}s (bound {TAKEOVER}s)"
        time.sleep(4 * INTERVAL)

        # A restarted beat stands by; the leader stopped gracefully hands over within the bound.
        third = beat(env, tmp_path, "beat-c")
        started.append(third)
        time.sleep(2 * INTERVAL)
        assert leader_now() == identity(second)
        second.stop(signal.SIGTERM)
        stopped_at = time.monotonic()
        processes.wait_until(lambda: leader_now() == identity(third), TAKEOVER + 2, "beat-c to take over")
        assert time.monotonic() - stopped_at <= TAKEOVER
        time.sleep(4 * INTERVAL)
        out = processes.subprocess.run(
            [processes.sys.executable, "manage.py", "heartbeat_check", "--max-age", "60"], cwd=processes.ROOT,
            env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"beat leader: {identity(third)}" in out.stdout
    finally:
        for proc in reversed(started):
            proc.stop()

    sent = fires(tmp_path, names)
    heartbeats = [when for when, task, _ in sent if task == "synthorg:heartbeat"]
    assert len(heartbeats) >= 12
    gaps = [(b - a).total_seconds() for a, b in pairwise(heartbeats)]
    # None twice: two sends of one interval would be closer than half an interval.
    assert min(gaps) > INTERVAL / 2, gaps
    # At most one interval skipped (the takeover), never two in a row.
    assert max(gaps) < 3 * INTERVAL, gaps
    # Each beat sent only while it led: the senders follow a, then b, then c, never interleaved.
    order = [beat_name for _, _, beat_name in sent]
    assert order == sorted(order), order
    # Every other periodic task too: never two sends of one task within its interval's half.
    by_task: dict[str, list[datetime]] = {}
    for when, task, _ in sent:
        by_task.setdefault(task, []).append(when)
    from synthorg.config import get_config
    from synthorg.periodic import registered

    intervals = {name: entry.interval(get_config()) for name, entry in registered().items()}
    for task, times in by_task.items():
        if task in intervals and task != "synthorg:heartbeat":
            for a, b in pairwise(times):
                assert (b - a).total_seconds() > intervals[task] / 2, (task, times)
    # The worker ran each one exactly once (the heartbeat row counts runs).
    processes.wait_until(lambda: ServiceHeartbeat.objects.filter(name="beat", count=len(heartbeats)).exists(),
                         1, "the heartbeat count to match the sends")
    leader_row = ServiceHeartbeat.objects.get(name="beat-leader")
    assert leader_row.count == 3


def test_heartbeat_check_on_a_database_without_leader(postgres: None, db: None) -> None:
    from io import StringIO

    from django.utils import timezone

    ServiceHeartbeat.objects.create(name="beat", last_seen_at=timezone.now(), count=1)
    out = StringIO()
    call_command("heartbeat_check", stdout=out)
    assert "beat leader: none holds the lock now" in out.getvalue()

"""Real fleet processes for these tests: gunicorn with deploy/gunicorn.conf.py, Celery workers and
beats, all on the test database (tests/webhooks/processes.py starts the same kinds of processes)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from tests.e2e.embedded import ROOT, free_port
from tests.webhooks import processes
from tests.webhooks.processes import Proc, wait_until

GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"


def restartable_port() -> int:
    """A free port below the ephemeral range, for a server restarted on the same port: an
    ephemeral port could be taken as some client's source port while the server is down."""
    import random
    import socket

    low, _high = (int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(200):
        port = random.randint(max(1024, low - 12000), low - 1)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


def gunicorn(env: dict[str, str], log_dir: Path, name: str = "gunicorn", workers: int = 2,
             port: int | None = None) -> tuple[Proc, str]:
    port = port or free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)}
    proc = Proc(name, [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "synthorg.wsgi"], env, log_dir)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: processes._up(base + "/healthz"), 60, f"{name} to listen")
    return proc, base


def worker(env: dict[str, str], log_dir: Path, name: str = "worker", concurrency: int = 2,
           quiet: bool = False) -> Proc:
    return Proc(name, [sys.executable, "-m", "celery", "-A", "synthorg", *(["-q"] if quiet else []), "worker",
                       "--loglevel", "INFO", "--concurrency", str(concurrency), "--without-gossip",
                       "--without-mingle", "-n", f"{name}@%h"], env, log_dir)


def beat(env: dict[str, str], log_dir: Path, name: str = "beat", quiet: bool = False) -> Proc:
    return Proc(name, [sys.executable, "-m", "celery", "-A", "synthorg", *(["-q"] if quiet else []), "beat",
                       "--loglevel", "INFO", "-s", str(log_dir / f"{name}-schedule")], env, log_dir)


# Celery prints this one line itself (to sys.__stdout__, not through logging) when its main
# process is asked to stop; nothing else may be outside JSON.
CELERY_PRINTS = re.compile(r"^worker: (Warm|Cold) shutdown \(MainProcess\)$")


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log as a JSON object (fails on a line that is not one)."""
    objects = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip() or CELERY_PRINTS.match(line):
            continue
        try:
            objects.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line[:300]!r}") from None
    return objects

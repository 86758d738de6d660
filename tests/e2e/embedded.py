"""Start what `make run` starts (web, worker, beat on the embedded default) for end-to-end tests."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_env(var_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SYNTHORG_", "DJANGO_", "CELERY_")) and k not in {
               "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "PYTEST_CURRENT_TEST"}}
    env.update({"SYNTHORG_DEV": "1", "SYNTHORG_VAR_DIR": str(var_dir), "HOST": "127.0.0.1",
                "PORT": str(port), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def processes_using(var_dir: Path) -> list[int]:
    """Every live process whose environment names this var dir (ours and nothing else's)."""
    marker = f"SYNTHORG_VAR_DIR={var_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


class EmbeddedService:
    def __init__(self, var_dir: Path, port: int, process: subprocess.Popen[str], env: dict[str, str]) -> None:
        self.var_dir = var_dir
        self.port = port
        self.process = process
        self.env = env
        self.base_url = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def manage(self, *args: str, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, text=True,
                              capture_output=True, timeout=timeout, input=stdin)

    def operator_token(self) -> str:
        password = (self.var_dir / "operator-password").read_text().strip()
        response = requests.post(self.url("/api/v1/auth/token"),
                                 json={"username": "operator", "password": password}, timeout=10)
        response.raise_for_status()
        return response.json()["token"]

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.var_dir / "synthorg.sqlite3", timeout=30)

    def wait_for(self, predicate: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"embedded service exited early while waiting for {what}")
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def embedded_service(var_dir: Path, **extra_env: str) -> Iterator[EmbeddedService]:
    port = free_port()
    env = embedded_env(var_dir, port, **extra_env)
    log = open(var_dir / "embedded.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "synthorg.embedded"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    service = EmbeddedService(var_dir, port, process, env)

    def ready() -> bool:
        try:
            return requests.get(service.url("/readyz"), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        service.wait_for(ready, 120, "/readyz")
        yield service
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
        for pid in processes_using(var_dir):  # never leave anything behind, even on failure
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

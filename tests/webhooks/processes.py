"""Real processes for the cross-process and fault tests: web servers, a Celery worker, beat and
a private redis-server, all pointed at the test database."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from django.conf import settings

from tests.e2e.embedded import ROOT, free_port


def database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def service_env(var_dir: Path, redis_url: str | None, **config: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNTHORG_CFG__", "CELERY_", "PYTEST_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "synthorg.settings", "DATABASE_URL": database_url(),
        "SECRET_KEY": os.environ["SECRET_KEY"], "SYNTHORG_MASTER_KEY": os.environ["SYNTHORG_MASTER_KEY"],
        "SYNTHORG_ALLOW_INSECURE_HTTP": "1", "SYNTHORG_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1",
        "SYNTHORG_REDIS_PREFIX": settings.REDIS_KEY_PREFIX, "DATABASE_CONN_MAX_AGE": "0",
    })
    env.pop("SYNTHORG_DEV", None)
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    for key, value in config.items():
        env[f"SYNTHORG_CFG__WEBHOOKS__{key.upper()}"] = str(value)
    return env


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = open(log_dir / f"{name}.log", "ab")
        self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def web(env: dict[str, str], log_dir: Path, name: str = "web") -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(name, [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload",
                       "--skip-checks"], env, log_dir)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(base + "/healthz"), 60, f"{name} to listen")
    return proc, base


def worker(env: dict[str, str], log_dir: Path, name: str = "worker") -> Proc:
    return Proc(name, [sys.executable, "-m", "celery", "-A", "synthorg", "worker", "--loglevel", "INFO",
                       "--concurrency", "2", "--without-gossip", "--without-mingle", "-n", f"{name}@%h"], env, log_dir)


def beat(env: dict[str, str], log_dir: Path) -> Proc:
    return Proc("beat", [sys.executable, "-m", "celery", "-A", "synthorg", "beat", "--loglevel", "INFO",
                         "-s", str(log_dir / "beat-schedule")], env, log_dir)


def redis_server(port: int, log_dir: Path) -> Proc:
    # Private and memory-only: never the shared server, nothing written to disk.
    return Proc(f"redis-{port}", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", str(log_dir)], dict(os.environ), log_dir)


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")

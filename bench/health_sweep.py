"""Health sweep benchmark: 1,000 generic_http connections against a local server answering after 200 ms.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/NAME REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/health_sweep.py [--connections 1000] [--delay 0.2] [--sequential 50]

Creates a throwaway database (``test_<NAME>`` on PostgreSQL, a temporary SQLite file otherwise),
starts a real Celery worker (``--concurrency 2``, as on this 2-core machine) with the same
settings and broker, sends ``integrations.health_sweep`` through the broker and times until
every connection has a recorded result. The baseline probes connections one after another
in this process (``integrations.health.connection_probe``); by default it measures
``--sequential`` of them and scales to the full count (``--sequential 0`` measures all).
Prints both figures and their ratio; the goal is a sweep under 10 s.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = """from tests.settings import *  # noqa: F403
# The worker must really enqueue the chunk tasks it fans out.
CELERY_TASK_ALWAYS_EAGER = False
"""


class _SlowServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048  # 1,000 probes connect at once; the default backlog of 5 would drop SYNs
    delay = 0.2


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: _SlowServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        time.sleep(self.server.delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD


def setup_django() -> Path:
    sys.path.insert(0, str(ROOT))
    settings_dir = Path(tempfile.mkdtemp(prefix="synthorg-bench-settings-"))
    (settings_dir / "bench_health_settings.py").write_text(SETTINGS)
    sys.path.insert(0, str(settings_dir))
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_health_settings"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(settings_dir), str(ROOT), os.environ.get("PYTHONPATH", "")])
    import django

    django.setup()
    return settings_dir


def start_worker(db_settings: dict[str, Any]) -> subprocess.Popen[bytes]:
    env = dict(os.environ)  # carries the master key, the Redis prefix and the var dir of this run
    if db_settings["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = (f"postgres://{db_settings['USER']}@{db_settings['HOST']}:{db_settings['PORT']}/"
                               f"{db_settings['NAME']}")
    else:
        env["DATABASE_URL"] = f"sqlite:///{db_settings['NAME']}"
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "synthorg", "worker", "--concurrency", "2",
                             "--loglevel", "WARNING", "--hostname", f"bench-health-{os.getpid()}@%h"],
                            cwd=ROOT, env=env, start_new_session=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the server waits before answering")
    parser.add_argument("--sequential", type=int, default=50, help="baseline sample size (0 = all)")
    args = parser.parse_args()

    setup_django()
    from django.db import connection

    if connection.vendor == "sqlite":
        connection.settings_dict["TEST"]["NAME"] = str(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    db_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)

    from integrations import health
    from integrations.models import Connection
    from integrations.tasks import health_sweep_task
    from synthorg.celery import app
    from synthorg.config import get_config
    from synthorg.tasks import ping_task

    app.conf.task_always_eager = False
    server = _SlowServer(("127.0.0.1", 0), _Handler)
    server.delay = args.delay
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/"
    Connection.objects.bulk_create([
        Connection(name=f"bench-{index:05d}", connection_type="generic_http", config={"base_url": base_url},
                   secret_backend="encrypted_sqlite")
        for index in range(args.connections)])
    health_cfg = get_config().integrations.health
    print(f"database: {connection.vendor}; broker: {app.conf.broker_url.split('://')[0]}; "
          f"{args.connections} connections, server delay {args.delay * 1000:.0f} ms; "
          f"chunk {health_cfg.probe_chunk_size}, threads {health_cfg.probe_threads}, worker concurrency 2")

    worker = start_worker(connection.settings_dict)
    try:
        ping_task.delay("warm-up").get(timeout=120)  # the worker is up before the clock starts
        started = time.perf_counter()
        health_sweep_task.delay()
        deadline = started + 600
        while Connection.objects.filter(health_checked_at__isnull=True).exists():
            if time.perf_counter() > deadline:
                raise SystemExit("the sweep did not finish within 600 s")
            time.sleep(0.05)
        swept = time.perf_counter() - started
        healthy = Connection.objects.filter(health_status="healthy").count()
        print(f"  sweep with the real worker: {swept:.2f} s ({healthy}/{args.connections} healthy)")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()

    sample = args.connections if args.sequential <= 0 else min(args.sequential, args.connections)
    rows = list(Connection.objects.order_by("pk")[:sample])
    started = time.perf_counter()
    for row in rows:
        health.connection_probe(connection=row)
    measured = time.perf_counter() - started
    sequential = measured * args.connections / sample
    how = "measured" if sample == args.connections else f"measured on {sample}, scaled to {args.connections}"
    print(f"  one after another:          {sequential:.2f} s ({how})")
    print(f"  ratio (sequential / sweep): {sequential / swept:.1f}x; goal: sweep under 10 s -> "
          f"{'met' if swept < 10 else 'NOT met'}")
    server.shutdown()
    connection.creation.destroy_test_db(db_name, verbosity=0)


if __name__ == "__main__":
    main()

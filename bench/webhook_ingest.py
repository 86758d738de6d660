"""Signed GitHub deliveries per second through the full receiver vs. a minimal baseline view.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/DB REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/webhook_ingest.py [--requests 4000] [--concurrency 16]

Both servers are gunicorn with 2 sync workers on the same PostgreSQL and Redis. The baseline
(``baseline_app`` below, no middleware) reads the body, checks the GitHub HMAC with
``hmac.compare_digest``, inserts one row and sends one Celery message: the least a durable,
verified receiver must do. Every request carries a distinct, correctly signed body. The
per-connection rate limit and the flood guard are lifted for the run. Prints requests/s,
p50/p99 latency of each and the ratio project/baseline (goal: >= 1.0, p99 < 50 ms).
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECRET = b"bench-signing-secret"
BASELINE_TABLE = "bench_baseline_delivery"


# --- the baseline server (imported by gunicorn as bench.webhook_ingest:baseline_app) -----------

def _baseline() -> Any:
    import django
    from django.conf import settings

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SECRET_KEY", "bench-" + "k" * 50)
    from synthorg.settings import DATABASES  # the same DATABASE_URL parsing as the project

    settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, MIDDLEWARE=[], DATABASES=DATABASES,
                       INSTALLED_APPS=[], SECRET_KEY=os.environ["SECRET_KEY"])
    django.setup()
    from celery import Celery
    from django.core.handlers.wsgi import WSGIHandler

    return WSGIHandler(), Celery("bench", broker=os.environ["REDIS_URL"])


def baseline_view(request: Any) -> Any:
    from django.db import connection
    from django.http import HttpResponse, JsonResponse

    body = request.body
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
        return HttpResponse(status=401)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {BASELINE_TABLE} (delivery_id, event, body) VALUES (%s, %s, %s) RETURNING id",  # noqa: S608 (a constant table name)
                       [request.headers.get("X-GitHub-Delivery", ""), request.headers.get("X-GitHub-Event", ""),
                        body.decode()])
        row_id = cursor.fetchone()[0]
    _celery.send_task("bench.noop", args=[row_id])
    return JsonResponse({"status": "accepted", "delivery_id": row_id}, status=202)


if os.environ.get("BENCH_ROLE") == "baseline":
    from django.urls import path

    baseline_app, _celery = _baseline()
    urlpatterns = [path("hook", baseline_view)]


# --- the driver -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn(app: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", app, "--workers", "2", "--bind",
                                f"127.0.0.1:{port}", "--log-level", "warning"], cwd=ROOT, env=env,
                               start_new_session=True)
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process, f"http://127.0.0.1:{port}"
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{app} did not start")


def load(url: str, total: int, concurrency: int, tag: str) -> tuple[float, list[float], dict[int, int]]:
    import requests

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    per_thread = total // concurrency

    def run(worker: int) -> None:
        session = requests.Session()
        for index in range(per_thread):
            body = json.dumps({"tag": tag, "worker": worker, "n": index, "nonce": uuid.uuid4().hex,
                               "action": "opened"}).encode()
            headers = {"Content-Type": "application/json", "X-GitHub-Event": "pull_request",
                       "X-GitHub-Delivery": str(uuid.uuid4()),
                       "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()}
            started = time.perf_counter()
            response = session.post(url, data=body, headers=headers, timeout=30)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, statuses


def report(name: str, seconds: float, latencies: list[float], statuses: dict[int, int]) -> float:
    latencies.sort()
    rate = len(latencies) / seconds
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"{name:9s} {rate:8.1f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  statuses {statuses}")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        raise SystemExit("set DATABASE_URL (PostgreSQL) and REDIS_URL")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "synthorg.settings", "SYNTHORG_ALLOW_INSECURE_HTTP": "1",
           "SYNTHORG_REDIS_PREFIX": f"synthorg-bench-{uuid.uuid4().hex[:8]}:",
           "SYNTHORG_CFG__WEBHOOKS__RATE_LIMIT_RPM": "1000000", "SYNTHORG_CFG__WEBHOOKS__FLOOD_RPM_PER_IP": "0"}
    env.setdefault("SECRET_KEY", "bench-" + "abcdefghij" * 6)
    env.setdefault("SYNTHORG_MASTER_KEY", "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A=")
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    from integrations import selectors, services

    name = "bench-gh"
    if selectors.connection_find(name) is None:
        services.connection_create(name=name, connection_type="github",
                                   credentials={"token": "bench", "signing_secret": SECRET.decode()})
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} (id bigserial primary key, "
                       "delivery_id text, event text, body text)")
    connection.close()

    servers = []
    try:
        project, project_url = gunicorn("synthorg.wsgi:application", env)
        servers.append(project)
        baseline, baseline_url = gunicorn("bench.webhook_ingest:baseline_app", {**env, "BENCH_ROLE": "baseline"})
        servers.append(baseline)
        print(f"{args.requests} signed GitHub deliveries, {args.concurrency} connections, gunicorn 2 workers each")
        load(f"{project_url}/api/v1/webhooks/{name}/auto", args.concurrency * 10, args.concurrency, "warm")
        load(f"{baseline_url}/hook", args.concurrency * 10, args.concurrency, "warm")
        base_rate = report("baseline", *load(f"{baseline_url}/hook", args.requests, args.concurrency, "base"))
        proj_rate = report("project", *load(f"{project_url}/api/v1/webhooks/{name}/auto", args.requests,
                                            args.concurrency, "proj"))
        print(f"ratio project/baseline: {proj_rate / base_rate:.2f}")
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

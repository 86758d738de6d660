"""Signed GitHub deliveries per second through the full receiver vs. a minimal baseline view
and the common floor (../shared/perf-floor/floor.py), in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/DB REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/webhook_ingest.py [--client wrk|python] [--seconds 4] \\
        [--requests 4000] [--concurrency 16] [--rounds 5] [--worker-class sync|gthread] [--threads 8]

The load comes from wrk (Debian's ``wrk``; ``bench/wrk_load.py``) when it is installed, as
issue 15 §7 measures: 2 threads, ``--concurrency`` connections, ``--seconds`` per server and
round, every request a distinct signed body; else (or with ``--client python``) from Python
threads sending ``--requests`` per server and round. The project and the baseline are gunicorn
with the same settings (2 workers, the same worker class and threads) on the same PostgreSQL
and Redis; the floor runs as its docstring says (``gunicorn -w 2``, sync workers). The baseline
(``baseline_app`` below, no middleware) reads the body, checks the GitHub HMAC with
``hmac.compare_digest``, inserts one row and sends one Celery message (same broker options as
the project): the least a durable, verified receiver must do. The project runs with everything
on: the per-address flood guard and the per-connection limit are *raised* (1,000,000/min), not
turned off, so each request pays for both limits (one Redis round trip, `webhooks.gate`);
replay protection, the activity log and the outbox are as in production.

Method: every request carries a distinct, correctly signed body (built before the clock
starts, so signing costs the load generator nothing while measuring); each server is warmed
up first; then ``--rounds`` rounds alternate the order (baseline first, then project first,
...) so a load change on the machine hits both alike. Each round prints requests/s and
p50/p99 latency of both and their ratio; the summary gives the median ratio and the spread.
The run checks that every 202 left a stored delivery, and removes the Redis keys it wrote.
Goal (issue 5): ratio >= 1.0 and p99 < 50 ms.

The floor (issue 15 §7) is the naive receiver every receiver here is measured against: one
Django view, no middleware, HMAC check, one INSERT, one Celery message to Redis. It runs from
its own folder with gunicorn (2 sync workers), ``FLOOR_DB=pg`` on this run's database (its
table ``delivery``) and ``FLOOR_BROKER`` on Redis database 14 (nothing consumes it; the key is
removed afterwards); its bodies are signed with its own secret. Every round runs the three
servers in a rotating order and prints project/floor next to project/baseline.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
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
sys.path.insert(0, str(ROOT))

from bench import wrk_load  # noqa: E402  (the path above first)

FLOOR_DIR = ROOT.parent / "shared" / "perf-floor"
FLOOR_SECRET = b"It's a Secret to Everybody"
SECRET = b"bench-signing-secret"
BASELINE_TABLE = "bench_baseline_delivery"
CONNECTION_NAME = "bench-gh"
RAISED_LIMIT = "1000000"


# --- the baseline server (imported by gunicorn as bench.webhook_ingest:baseline_app) -----------

def _baseline() -> Any:
    import django
    from django.conf import settings

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SECRET_KEY", "bench-" + "k" * 50)
    # The same DATABASE_URL parsing (CONN_MAX_AGE, health checks) and broker options as the project.
    from synthorg.settings import CELERY_BROKER_TRANSPORT_OPTIONS, DATABASES

    settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, MIDDLEWARE=[], DATABASES=DATABASES,
                       INSTALLED_APPS=[], SECRET_KEY=os.environ["SECRET_KEY"])
    django.setup()
    from celery import Celery
    from django.core.handlers.wsgi import WSGIHandler

    app = Celery("bench", broker=os.environ["REDIS_URL"])
    app.conf.broker_transport_options = dict(CELERY_BROKER_TRANSPORT_OPTIONS)
    return WSGIHandler(), app


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


def gunicorn(app: str, env: dict[str, str], args: argparse.Namespace, probe_path: str,
             cwd: Path = ROOT) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", app, "--workers", str(args.workers), "--worker-class",
               args.worker_class, "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    if args.worker_class == "gthread":
        command += ["--threads", str(args.threads)]
    process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", probe_path)  # 405 (project) or 401 (baseline): it is up
            connection.getresponse().read()
            connection.close()
            return process, port
        except OSError:
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    raise SystemExit(f"{app} did not start")


def signed_requests(count: int, tag: str, secret: bytes = SECRET) -> list[tuple[bytes, dict[str, str]]]:
    """Distinct, correctly signed GitHub deliveries (a nonce in every body: no replays)."""
    requests = []
    for index in range(count):
        body = json.dumps({"action": "opened", "number": index, "tag": tag, "nonce": uuid.uuid4().hex,
                           "pull_request": {"title": "bench", "base": {"ref": "main"}}}).encode()
        requests.append((body, {"Content-Type": "application/json", "X-GitHub-Event": "pull_request",
                                "X-GitHub-Delivery": str(uuid.uuid4()), "User-Agent": "GitHub-Hookshot/bench",
                                "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()}))
    return requests


def load(port: int, path: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int) -> tuple[
        float, list[float], dict[int, int]]:
    """Send ``requests`` over ``concurrency`` keep-alive clients (http.client reconnects when a
    sync worker closes); returns the wall time, the latencies and the status counts."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)

    def run(share: list[tuple[bytes, dict[str, str]]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        counts: dict[int, int] = {}
        start.wait()
        for body, headers in share:
            began = time.perf_counter()
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - began)
            counts[response.status] = counts.get(response.status, 0) + 1
        connection.close()
        with lock:
            latencies.extend(mine)
            for status, count in counts.items():
                statuses[status] = statuses.get(status, 0) + count

    threads = [threading.Thread(target=run, args=(requests[i::concurrency],)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, latencies, statuses


def summarise(seconds: float, latencies: list[float], statuses: dict[int, int]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {"rate": len(ordered) / seconds, "p50": statistics.median(ordered) * 1000,
            "p99": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, "statuses": statuses}


def line(name: str, figures: dict[str, Any]) -> str:
    return (f"  {name:9s} {figures['rate']:8.1f} req/s  p50 {figures['p50']:6.1f} ms  p99 {figures['p99']:6.1f} ms"
            f"  statuses {dict(sorted(figures['statuses'].items()))}")


def redis_cleanup(prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=4000, help="per server and round")
    parser.add_argument("--concurrency", type=int, default=16)
    # Five rounds: on a shared machine one round in five is often off by 0.1 or more.
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2000, help="requests per server before measuring")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    parser.add_argument("--threads", type=int, default=8, help="per worker, with --worker-class gthread")
    parser.add_argument("--client", choices=("wrk", "python"), default="wrk" if wrk_load.available() else "python",
                        help="load generator: wrk (the issue's; Debian package wrk) or Python threads")
    parser.add_argument("--seconds", type=int, default=4, help="per server and round, with --client wrk")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        raise SystemExit("set DATABASE_URL (PostgreSQL) and REDIS_URL")
    prefix = f"synthorg-bench-{uuid.uuid4().hex[:8]}:"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "synthorg.settings", "SYNTHORG_ALLOW_INSECURE_HTTP": "1",
           "SYNTHORG_REDIS_PREFIX": prefix,
           # Raised for the run, never turned off: both limiters still take their Redis round trip.
           "SYNTHORG_CFG__WEBHOOKS__RATE_LIMIT_RPM": RAISED_LIMIT,
           "SYNTHORG_CFG__WEBHOOKS__FLOOD_RPM_PER_IP": RAISED_LIMIT}
    env.setdefault("SECRET_KEY", "bench-" + "abcdefghij" * 6)
    env.setdefault("SYNTHORG_MASTER_KEY", "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A=")
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    from integrations import selectors, services
    from webhooks.models import Delivery

    if selectors.connection_find(CONNECTION_NAME) is None:
        services.connection_create(name=CONNECTION_NAME, connection_type="github",
                                   credentials={"token": "bench", "signing_secret": SECRET.decode()})
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} (id bigserial primary key, "
                       "delivery_id text, event text, body text)")
    stored_before = Delivery.objects.filter(connection_name=CONNECTION_NAME).count()
    connection.close()

    project_path = f"/api/v1/webhooks/{CONNECTION_NAME}/auto"
    floor_env = floor_environment(env)
    subprocess.run([sys.executable, "floor.py", "init"], cwd=FLOOR_DIR, env=floor_env, check=True)
    servers = []
    names = ("floor", "baseline", "project")
    rounds: list[dict[str, dict[str, Any]]] = []
    accepted = 0
    try:
        project, project_port = gunicorn("synthorg.wsgi:application", env, args, project_path)
        servers.append(project)
        baseline, baseline_port = gunicorn("bench.webhook_ingest:baseline_app", {**env, "BENCH_ROLE": "baseline"},
                                           args, "/hook")
        servers.append(baseline)
        # The floor always runs as its docstring says: `gunicorn -w 2` (sync workers).
        floor_args = argparse.Namespace(**{**vars(args), "workers": 2, "worker_class": "sync"})
        floor, floor_port = gunicorn("floor:application", floor_env, floor_args, "/bare", cwd=FLOOR_DIR)
        servers.append(floor)
        threads = f", {args.threads} threads each" if args.worker_class == "gthread" else ""
        amount = (f"wrk for {args.seconds:g} s" if args.client == "wrk"
                  else f"{args.requests} requests from Python threads")
        print(f"distinct signed GitHub deliveries, {amount} per server and round, {args.concurrency} "
              f"connections; gunicorn {args.workers} {args.worker_class} workers{threads} (floor: 2 sync, as its "
              f"docstring runs it); {args.rounds} rounds, order rotating; load average {os.getloadavg()[0]:.2f}")
        targets = {"floor": (floor_port, "/ingest", FLOOR_SECRET), "baseline": (baseline_port, "/hook", SECRET),
                   "project": (project_port, project_path, SECRET)}
        for name, (port, path, secret) in targets.items():
            warm = load(port, path, signed_requests(args.warmup, f"warm-{name}", secret), args.concurrency)[2]
            accepted += warm.get(202, 0) if name == "project" else 0
        for number in range(args.rounds):
            order = [names[(number + offset) % 3] for offset in range(3)]
            figures: dict[str, dict[str, Any]] = {}
            for name in order:
                port, path, secret = targets[name]
                if args.client == "wrk":
                    # More distinct bodies than wrk can send in the time: none is ever sent twice.
                    batch = signed_requests(int(args.seconds * WRK_MAX_RATE), f"{name}-{number}", secret)
                    figures[name] = wrk_load.run(port, path, batch, connections=args.concurrency,
                                                 seconds=args.seconds)
                else:
                    batch = signed_requests(args.requests, f"{name}-{number}", secret)
                    figures[name] = summarise(*load(port, path, batch, args.concurrency))
                if name == "project":
                    accepted += figures[name]["statuses"].get(202, 0)
            print(f"round {number + 1} (load {os.getloadavg()[0]:.2f}, order {'/'.join(order)}): "
                  f"project/floor {figures['project']['rate'] / figures['floor']['rate']:.2f}, "
                  f"project/baseline {figures['project']['rate'] / figures['baseline']['rate']:.2f}")
            for name in names:
                print(line(name, figures[name]))
            rounds.append(figures)
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        removed = redis_cleanup(prefix)
        floor_cleanup()
    stored = Delivery.objects.filter(connection_name=CONNECTION_NAME).count() - stored_before
    for reference in ("floor", "baseline"):
        ratios = sorted(r["project"]["rate"] / r[reference]["rate"] for r in rounds)
        print(f"ratio project/{reference}: median {statistics.median(ratios):.2f} (rounds: "
              f"{', '.join(f'{r:.2f}' for r in ratios)})")
    for name in names:
        p50 = statistics.median(r[name]["p50"] for r in rounds)
        p99 = statistics.median(r[name]["p99"] for r in rounds)
        rate = statistics.median(r[name]["rate"] for r in rounds)
        print(f"  {name:9s} median {rate:7.1f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    print(f"project: {accepted} answered 202, {stored} deliveries stored; {removed} bench Redis keys removed")
    # wrk stops at the end of its time with requests still in flight: those are stored (the
    # server finished them) but their answers were not counted, at most one per connection and round.
    in_flight = args.concurrency * args.rounds if args.client == "wrk" else 0
    return 0 if accepted <= stored <= accepted + in_flight else 1


FLOOR_REDIS_DB = 14
# Distinct requests built per second of a wrk run: above any rate this machine reaches.
WRK_MAX_RATE = 5000


def floor_environment(env: dict[str, str]) -> dict[str, str]:
    """The floor's own variables, on this run's PostgreSQL database and a Redis database of its own."""
    from urllib.parse import urlsplit

    database = urlsplit(env["DATABASE_URL"]).path.lstrip("/")
    redis_url = urlsplit(env["REDIS_URL"])
    return {**env, "FLOOR_DB": "pg", "FLOOR_PGDB": database,
            "FLOOR_BROKER": f"redis://{redis_url.hostname}:{redis_url.port or 6379}/{FLOOR_REDIS_DB}"}


def floor_cleanup() -> None:
    """The floor's messages (nothing consumes them) leave with its queue key."""
    import redis

    client = redis.Redis.from_url(floor_environment(dict(os.environ))["FLOOR_BROKER"])
    client.delete("celery")


if __name__ == "__main__":
    raise SystemExit(main())

"""Latency of the whole path: from the receiver's 202 to the bus publication and to the trigger
run's start, at 50 % and 80 % of the receiver's measured capacity (issue 15 §6).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/DB REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/webhook_latency.py [--seconds 20] [--loads 0.5,0.8]

gunicorn runs the project (deploy/gunicorn.conf.py, 2 sync workers) and two Celery workers
(one process each) consume: each `webhooks.delivery_publish_batch` message publishes its batch
and starts the runs it created; a trigger rule runs `log_event` for every delivery. First the
receiver's capacity is measured (16 connections, as bench/webhook_ingest.py, no worker
running); then, for each load, distinct signed deliveries are sent open-loop at that fraction
of the capacity (each at its scheduled time, from several threads) for ``--seconds``. The 202's
wall-clock time is kept per delivery; publication (``Delivery.published_at``) and run start
(``WorkflowRun.started_at``, first attempt) come from the database, all on this machine's clock.
Goal: at 50 % load, publication p99 < 250 ms and run start p99 < 500 ms. The ratio to the
dispatcher's linger time (``webhooks.dispatcher.LINGER_SECONDS``: how long the receiver's thread
waits to batch deliveries into one Celery message) says how much of the lag is batching.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.webhook_ingest import (  # noqa: E402  (the path above first)
    CONNECTION_NAME,
    RAISED_LIMIT,
    SECRET,
    free_port,
    load,
    redis_cleanup,
    signed_requests,
)

RULE_NAME = "bench-latency"


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL)


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def paced(port: int, path: str, rate: float, seconds: float, threads: int = 16) -> dict[int, float]:
    """Open loop: request i is due at start + i / rate; returns delivery id -> wall time of its 202."""
    batch = signed_requests(int(rate * seconds), f"paced-{uuid.uuid4().hex[:6]}")
    answered: dict[int, float] = {}
    lock = threading.Lock()
    began = time.monotonic() + 0.5

    def run(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for index in range(offset, len(batch), threads):
            delay = began + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body, headers = batch[index]
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            if response.status == 202:
                with lock:
                    answered[json.loads(payload)["delivery_id"]] = time.time()
        connection.close()

    workers = [threading.Thread(target=run, args=(offset,)) for offset in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return answered


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * fraction + 0.5) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per load level")
    parser.add_argument("--loads", default="0.5,0.8", help="fractions of the measured capacity")
    parser.add_argument("--capacity-requests", type=int, default=2000)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        raise SystemExit("set DATABASE_URL (PostgreSQL) and REDIS_URL")
    prefix = f"synthorg-bench-{uuid.uuid4().hex[:8]}:"
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "synthorg.settings", "SYNTHORG_ALLOW_INSECURE_HTTP": "1",
           "SYNTHORG_REDIS_PREFIX": prefix, "SYNTHORG_CFG__WEBHOOKS__RATE_LIMIT_RPM": RAISED_LIMIT,
           "SYNTHORG_CFG__WEBHOOKS__FLOOD_RPM_PER_IP": RAISED_LIMIT, "GUNICORN_BIND": f"127.0.0.1:{port}",
           "WEB_CONCURRENCY": "2", "GUNICORN_ACCESS_LOG": "/dev/null", "GUNICORN_LOG_LEVEL": "warning",
           "LOG_LEVEL": "WARNING"}
    env.setdefault("SECRET_KEY", "bench-" + "abcdefghij" * 6)
    env.setdefault("SYNTHORG_MASTER_KEY", "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A=")
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    from django.db import connection

    from integrations import selectors
    from integrations import services as connection_services
    from webhooks import services
    from webhooks.dispatcher import LINGER_SECONDS
    from webhooks.models import Delivery, TriggerRule, WorkflowRun

    if selectors.connection_find(CONNECTION_NAME) is None:
        connection_services.connection_create(name=CONNECTION_NAME, connection_type="github",
                                              credentials={"token": "bench", "signing_secret": SECRET.decode()})
    if not TriggerRule.objects.filter(name=RULE_NAME).exists():
        services.trigger_rule_create(data={"name": RULE_NAME, "event_type": "*", "workflow": "log_event"})
    connection.close()
    path = f"/api/v1/webhooks/{CONNECTION_NAME}/auto"
    processes: list[subprocess.Popen[bytes]] = []
    from django.utils import timezone

    run_started = timezone.now()
    results: list[tuple[float, float, dict[str, float]]] = []
    try:
        processes.append(start([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "synthorg.wsgi"],
                               env))
        wait_listening(port)
        load(port, path, signed_requests(500, "warm"), 16)
        seconds, latencies, statuses = load(port, path, signed_requests(args.capacity_requests, "capacity"), 16)
        capacity = len(latencies) / seconds
        print(f"receiver capacity: {capacity:.1f} deliveries/s (16 connections, 2 sync workers, statuses "
              f"{statuses}); load average {os.getloadavg()[0]:.2f}")
        # The capacity run left deliveries for the workers: they start now and catch up first.
        for name in ("lat-1", "lat-2"):
            processes.append(start([sys.executable, "-m", "celery", "-A", "synthorg", "-q", "worker", "--loglevel",
                                    "WARNING", "--concurrency", "1", "--without-gossip", "--without-mingle",
                                    "-n", f"{name}@%h"], env))
        deadline = time.monotonic() + 300
        # Only this run's deliveries (earlier benches may have left unpublished ones behind).
        mine = Delivery.objects.filter(received_at__gte=run_started)
        while mine.exclude(publish_state=Delivery.PublishState.PUBLISHED).exists():
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not catch up with the capacity run")
            time.sleep(1)
        while WorkflowRun.objects.filter(status=WorkflowRun.Status.PENDING, delivery__in=mine).exists():
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not catch up with the capacity run's runs")
            time.sleep(1)
        connection.close()
        for fraction in (float(f) for f in args.loads.split(",")):
            rate = capacity * fraction
            answered = paced(port, path, rate, args.seconds)
            wait_until = time.monotonic() + 120
            while True:
                started = WorkflowRun.objects.filter(delivery_id__in=list(answered), started_at__isnull=False).count()
                if started >= len(answered) or time.monotonic() > wait_until:
                    break
                time.sleep(0.5)
            published = dict(Delivery.objects.filter(pk__in=list(answered), published_at__isnull=False)
                             .values_list("pk", "published_at"))
            runs = dict(WorkflowRun.objects.filter(delivery_id__in=list(answered), started_at__isnull=False)
                        .values_list("delivery_id", "started_at"))
            connection.close()
            publication = [(published[i].timestamp() - t) * 1000 for i, t in answered.items() if i in published]
            run_start = [(runs[i].timestamp() - t) * 1000 for i, t in answered.items() if i in runs]
            figures = {"pub50": statistics.median(publication), "pub99": percentile(publication, 0.99),
                       "run50": statistics.median(run_start), "run99": percentile(run_start, 0.99)}
            results.append((fraction, rate, figures))
            print(f"{fraction:.0%} load ({rate:.1f}/s for {args.seconds:.0f} s, {len(answered)} accepted, "
                  f"{len(publication)} published, {len(run_start)} runs started; load average "
                  f"{os.getloadavg()[0]:.2f}):")
            linger = LINGER_SECONDS * 1000
            print(f"  202 -> published   p50 {figures['pub50']:7.1f} ms  p99 {figures['pub99']:7.1f} ms  "
                  f"(p50 = {figures['pub50'] / linger:.1f} x, p99 = {figures['pub99'] / linger:.1f} x the "
                  f"{linger:.0f} ms linger)")
            print(f"  202 -> run started p50 {figures['run50']:7.1f} ms  p99 {figures['run99']:7.1f} ms  "
                  f"(p50 = {figures['run50'] / linger:.1f} x, p99 = {figures['run99'] / linger:.1f} x the linger)")
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
        redis_cleanup(prefix)
    half = [figures for fraction, _, figures in results if abs(fraction - 0.5) < 1e-9]
    if half:
        ok = half[0]["pub99"] < 250 and half[0]["run99"] < 500
        print(f"goal at 50 % (publication p99 < 250 ms, run start p99 < 500 ms): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

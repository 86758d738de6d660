"""Secret backends compared: reveal latency and webhook ingest on a cache hit (issue 14).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/DB REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/secret_backends.py [--deliveries 1000] [--chunk 50] [--reveals 200]

Starts its own OpenBao dev server and moto server on free loopback ports (as the tests do),
creates a throw-away test database (``test_<DB>``) and, for each backend (``encrypted_sqlite``,
``secret_manager_vault``, ``secret_manager_cloud_a``):

* **reveal**: ``GET /api/v1/connections/<name>/secrets/token`` through the whole API stack,
  cold (the process cache emptied before each call: one secret-manager read) and warm;
* **ingest**: ``--deliveries`` signed GitHub deliveries on one connection through the whole
  receiver (Django test client, all middleware, PostgreSQL, Redis; tasks run inline), after one
  warm-up delivery, counting the reads that reached the secret manager.

Deliveries go in turns of ``--chunk`` per backend, the order rotating each turn, so a load change
on the machine hits all alike; the summary
gives each backend's ingest rate, its ratio to ``encrypted_sqlite`` (goal >= 0.95), and
the secret-manager reads per 1,000 accepted deliveries (goal <= 2). In-process, single-threaded:
it measures what the backend adds per request, not the server's throughput (bench/webhook_ingest.py).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

BACKENDS = ("encrypted_sqlite", "secret_manager_vault", "secret_manager_cloud_a")
SECRET = "bench-signing-secret-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=1000, help="per backend")
    parser.add_argument("--chunk", type=int, default=50, help="deliveries per backend turn")
    parser.add_argument("--reveals", type=int, default=200)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    from integrations.models import Connection
    from synthorg.config import reset_config_cache
    from tests.secret_backends.conftest import backend_overrides
    from tests.secret_backends.servers import start_bao, start_moto

    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    bao, moto = start_bao(), start_moto()
    os.environ["VAULT_TOKEN"] = bao.root_token
    setup_test_environment()
    old_config = setup_databases(verbosity=0, interactive=False)
    # Both managers configured at once: each connection keeps the backend it was created under.
    block = {**backend_overrides("encrypted_sqlite", bao=bao, moto=moto, prefix="bench")}
    try:
        runs = {}
        for name in BACKENDS:
            settings.SYNTHORG_CONFIG_OVERRIDES = {
                "secret_backend": {**block, "backend_type": name},
                "connections": {"reveal_rate_per_minute": 0},
                "webhooks": {"rate_limit_rpm": 0, "flood_rpm_per_ip": 0},
            }
            reset_config_cache()  # a plain assignment sends no setting_changed signal
            runs[name] = Run(name, args)
            assert Connection.objects.get(name=runs[name].name).secret_backend == name
        for run in runs.values():
            run.reveals()
        # Set up: freeze the heap as a served process does (synthorg/wsgi.py). Unfrozen, each full
        # GC pass walked this process's start-up objects (and the in-process moto server's) for
        # 0.2-0.3 s; the few in a run fell at random on one backend's turns and swung its ratio
        # by several percent, more than the backends differ.
        from synthorg.gc_startup import freeze_startup_heap

        freeze_startup_heap()
        # Ingest in turns of --chunk deliveries, the order rotating every turn, so a load change
        # on the (shared) machine hits every backend alike.
        turn = 0
        while any(run.left for run in runs.values()):
            order = BACKENDS[turn % 3:] + BACKENDS[:turn % 3]
            for name in order:
                runs[name].ingest(args.chunk)
            turn += 1
    finally:
        teardown_databases(old_config, verbosity=0)
        bao.stop()
        moto.stop()
    base = runs["encrypted_sqlite"].rate
    print(f"\n{args.deliveries} deliveries per backend in turns of {args.chunk}; {args.reveals} warm reveals")
    for name, run in runs.items():
        print(f"{name:24} ingest {run.rate:7.1f}/s  ratio {run.rate / base:5.3f} (goal >= 0.95)  "
              f"secret-manager reads per 1000 accepted deliveries {run.reads_per_1000:5.2f} (goal <= 2)  "
              f"reveal cold {statistics.median(run.cold):6.2f} ms  warm {statistics.median(run.warm):6.2f} ms")


class Run:
    """One backend's connection, its signed deliveries, and what was measured."""

    def __init__(self, backend: str, args: argparse.Namespace) -> None:
        from django.contrib.auth import get_user_model
        from rest_framework.test import APIClient

        from integrations import services
        from tests.webhooks.receiving import github_body, github_headers

        self.backend, self.args = backend, args
        self.name = "bench-" + backend.replace("_", "-")
        services.connection_create(name=self.name, connection_type="github",
                                   credentials={"token": "bench-token", "signing_secret": SECRET})
        user = get_user_model().objects.filter(username="bench").first() or get_user_model().objects.create_superuser(
            username="bench", password="bench-pw-123", email="b@example.com")
        self.api = APIClient()
        self.api.force_authenticate(user)
        bodies = [github_body(n, bench=self.name) for n in range(args.deliveries + 1)]
        self.signed = [(body, github_headers(body, secret=SECRET, delivery=f"{self.name}-{n}"))
                       for n, body in enumerate(bodies)]
        self.elapsed, self.sent, self.reads = 0.0, 0, 0
        self.cold: list[float] = []
        self.warm: list[float] = []
        self.warmed = False

    @property
    def left(self) -> int:
        return self.args.deliveries - self.sent

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0

    @property
    def reads_per_1000(self) -> float:
        return self.reads * 1000 / self.sent if self.sent else 0.0

    def reveals(self) -> None:
        from integrations import services
        from integrations.secrets import managed

        def once() -> float:
            started = time.perf_counter()
            response = self.api.get(f"/api/v1/connections/{self.name}/secrets/token")
            assert response.status_code == 200, response.content
            return (time.perf_counter() - started) * 1000

        once()  # imports and first-request set-up, not the backend
        for _ in range(max(1, self.args.reveals // 10)):
            managed.cache_clear()
            services.secret_cache_clear()
            self.cold.append(once())
        self.warm = [once() for _ in range(self.args.reveals)]

    def ingest(self, count: int) -> None:
        from django.test import Client

        from integrations.secrets import managed
        from tests.webhooks.receiving import post

        client = Client()
        reads_before = managed.reads[self.backend]
        if not self.warmed:  # the first delivery reads the secret (the one cache miss): counted, not timed
            from integrations import services
            from webhooks import receiver

            services.secret_cache_clear()
            receiver.connection_cache_clear()
            first = post(client, self.name, "push", *self.signed[0])
            assert first.status_code == 202, first.content
            self.warmed = True
        batch = self.signed[1 + self.sent:1 + self.sent + min(count, self.left)]
        started = time.perf_counter()
        for body, headers in batch:
            response = post(client, self.name, "push", body, headers)
            assert response.status_code == 202, response.content
        self.elapsed += time.perf_counter() - started
        self.reads += managed.reads[self.backend] - reads_before
        self.sent += len(batch)


if __name__ == "__main__":
    main()

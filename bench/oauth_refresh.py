"""Token manager throughput: 1,000 due tokens, two worker processes, the local OIDC provider.

    .venv/bin/python bench/oauth_refresh.py [--tokens 1000] [--workers 2]

Uses DATABASE_URL when set (a database you own; tables are created by migrate), else a
temporary SQLite file. Both workers are handed *every* token id (in different orders), as
two Celery workers would be by overlapping beat sweeps, so the run also shows the lease at
work: the provider must see exactly one token request per token.

Tokens are client-credentials tokens (the provider mints them without a user), so the
setup needs no interactive logins; the lease, the fenced write and the encryption are the
same code path as for refresh-token refreshes.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup(db_file: str | None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    if db_file:
        settings.DATABASES["default"]["NAME"] = db_file
    settings.SYNTHORG_CONFIG_OVERRIDES = {"connections": {"max_connections_per_type": 100_000}}
    django.setup()


def worker(db_file: str | None, ids: list[int], barrier: Any, results: Any) -> None:
    setup(db_file)
    from django.db import connections

    from oauthflow.services import token_refresh

    outcomes: dict[str, int] = {}
    barrier.wait(timeout=120)
    for token_id in ids:
        result = token_refresh(token_id=token_id).result
        outcomes[result] = outcomes.get(result, 0) + 1
    connections.close_all()
    results.put(outcomes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    db_file = None if os.environ.get("DATABASE_URL") else str(Path(tempfile.mkdtemp()) / "bench-oauth.sqlite3")
    setup(db_file)
    from datetime import timedelta

    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from integrations import services as connection_services
    from integrations.secrets import fernet
    from oauthflow.models import GrantType, OAuthToken
    from tests.peers.oidc_peer import OIDCPeer, PeerConfig

    call_command("migrate", verbosity=0)
    peer = OIDCPeer().start(PeerConfig(access_token_ttl=3600))
    try:
        client = peer.client()
        past = timezone.now() - timedelta(seconds=1)
        ciphertext, key_id = fernet.encrypt({"access_token": "expired"})
        run = f"{random.randrange(16**6):06x}"
        ids = []
        for index in range(args.tokens):
            connection = connection_services.connection_create(
                name=f"bench-{run}-{index}", connection_type="oauth_app",
                credentials={"client_id": client.client_id, "client_secret": client.client_secret,
                             "token_url": peer.token_endpoint, "scopes": ["api:read"]})
            ids.append(OAuthToken.objects.create(
                connection=connection, grant_type=GrantType.CLIENT_CREDENTIALS, ciphertext=ciphertext,
                key_id=key_id, expires_at=past, obtained_at=past, scopes=["api:read"], version=1).pk)
        connections.close_all()
        peer.reset_counters()

        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(args.workers + 1)
        results = context.Queue()
        processes = []
        for number in range(args.workers):
            order = list(ids)
            random.Random(number).shuffle(order)
            processes.append(context.Process(target=worker, args=(db_file, order, barrier, results)))
        for process in processes:
            process.start()
        barrier.wait(timeout=120)
        started = time.perf_counter()
        outcomes = [results.get(timeout=3600) for _ in processes]
        elapsed = time.perf_counter() - started
        for process in processes:
            process.join()
        calls = peer.token_requests()
        refreshed = OAuthToken.objects.filter(pk__in=ids, status=OAuthToken.Status.ACTIVE,
                                              last_refreshed_at__isnull=False).count()
    finally:
        peer.stop()
    database = "PostgreSQL" if not db_file else "SQLite"
    print(f"database: {database}; workers: {args.workers}; due tokens: {args.tokens}")
    print(f"worker outcomes: {outcomes}")
    print(f"tokens refreshed: {refreshed} in {elapsed:.2f} s -> {refreshed / elapsed:.1f} tokens/s")
    print(f"provider calls per token: {calls / args.tokens:.2f} (must be 1.00)")
    if calls != args.tokens or refreshed != args.tokens:
        sys.exit(1)


if __name__ == "__main__":
    main()

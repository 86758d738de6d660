"""Connections API benchmark: list and reveal throughput against plain DRF baselines in the same run.

    DATABASE_URL=postgres://... REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/connections.py

Runs with the test settings in a throwaway database (``test_<name>`` on PostgreSQL, a
temporary file on SQLite) created and dropped here. The reveal throttle is lifted for the
run (``SYNTHORG_CFG__CONNECTIONS__REVEAL_RATE_PER_MINUTE=0``). Both sides of each pair go
through the same middleware and token authentication, in interleaved rounds, so drift
hits both alike. Prints figures and ratios only (no assertions):

* ``GET /api/v1/connections`` vs. a plain ``ModelViewSet`` + ``ModelSerializer`` over the
  same rows and page size (aim: ratio >= 0.8);
* ``GET /api/v1/connections/{name}/secrets/{field}`` vs. a view that decrypts one value and
  writes one audit row.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
URLCONF = "bench_connections_urls"


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    # Every reveal would be throttled after the first few; the bench measures the work, not the limit.
    os.environ["SYNTHORG_CFG__CONNECTIONS__REVEAL_RATE_PER_MINUTE"] = "0"
    import django

    django.setup()


def install_urlconf() -> None:
    """The service's URLs plus the two baselines, as their own urlconf module."""
    from django.conf import settings
    from django.urls import include, path
    from rest_framework import serializers, viewsets
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.routers import SimpleRouter
    from rest_framework.views import APIView

    from integrations.models import Connection, SecretRecord
    from integrations.secrets.fernet import decrypt
    from synthorg.api.pagination import Pagination
    from synthorg.audit import audit_record

    class BaselineConnectionSerializer(serializers.ModelSerializer):
        class Meta:
            model = Connection
            exclude = ["secret_id"]

    class BaselineConnectionViewSet(viewsets.ModelViewSet):
        queryset = Connection.objects.all().order_by("name")
        serializer_class = BaselineConnectionSerializer
        permission_classes = [IsAuthenticated]
        pagination_class = Pagination

    class BaselineRevealView(APIView):
        """Decrypt one value and write one audit row: the least a reveal must do."""

        permission_classes = [IsAuthenticated]

        def get(self, request: Request, name: str, field: str) -> Response:
            connection = Connection.objects.get(name=name)
            value = decrypt(SecretRecord.objects.get(pk=connection.secret_id).ciphertext)[field]
            audit_record(action="bench.reveal", target=name, target_type="connection", actor=request.user,
                         request=request._request, details={"field": field})
            return Response({"field": field, "value": value})

    router = SimpleRouter(trailing_slash=False)
    router.register("bench/baseline/connections", BaselineConnectionViewSet, basename="bench-connection")
    module = types.ModuleType(URLCONF)
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("", include(settings.ROOT_URLCONF)),
        path("bench/baseline/reveal/<str:name>/<str:field>", BaselineRevealView.as_view()),
        *router.urls,
    ]
    sys.modules[URLCONF] = module
    settings.ROOT_URLCONF = URLCONF


def seed(rows: int) -> Any:
    """`rows` github connections (bulk, without secrets) plus one real one to reveal; a token client."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from integrations import services
    from integrations.models import Connection

    services.connection_create(name="reveal-me", connection_type="github",
                               credentials={"token": "ghp_bench_value_0123456789"})
    # Bulk rows skip the service (and so the per-type limit): the bench measures reads.
    Connection.objects.bulk_create(
        Connection(name=f"bench-{i:05d}", connection_type="github", config={"api_url": "https://api.github.com"},
                   secret_backend="encrypted_sqlite", secret_fields=["token"], metadata={"i": i})
        for i in range(rows - 1)
    )
    user = get_user_model().objects.create_user(username="bench", password="bench-pw-123", is_staff=True)
    # The list needs view_connection since issue 12 (staff alone grants nothing).
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="integrations",
                                                         codename__in=["reveal_secret", "view_connection"]))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def throughput(call: Callable[[], Any], seconds: float) -> float:
    done = 0
    started = time.perf_counter()
    stop = started + seconds
    while time.perf_counter() < stop:
        call()
        done += 1
    return done / (time.perf_counter() - started)


def compare(label: str, ours: Callable[[], Any], baseline: Callable[[], Any], *, rounds: int,
            seconds: float) -> None:
    for call in (ours, baseline):  # warm caches (permissions, content types, URL resolver)
        for _ in range(5):
            call()
    ours_rates, base_rates = [], []
    for _ in range(rounds):
        ours_rates.append(throughput(ours, seconds))
        base_rates.append(throughput(baseline, seconds))
    ours_rate, base_rate = statistics.median(ours_rates), statistics.median(base_rates)
    print(f"  {label:<8} ours {ours_rate:8.1f} req/s   baseline {base_rate:8.1f} req/s   "
          f"ratio {ours_rate / base_rate:.2f}   (median of {rounds} interleaved rounds of {seconds:.1f} s)")


def checked(client: Any, url: str, **params: Any) -> Callable[[], Any]:
    def call() -> Any:
        response = client.get(url, params)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}: {response.content[:200]!r}")
        return response
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500, help="connections in the table")
    parser.add_argument("--page", type=int, default=50, help="page size (?limit=) for both list endpoints")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round of one side")
    args = parser.parse_args()

    setup_django()
    from django.conf import settings
    from django.db import connection

    from synthorg.config import get_config

    if connection.vendor == "sqlite":
        connection.settings_dict["TEST"]["NAME"] = str(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        install_urlconf()
        client = seed(args.rows)
        assert get_config().integrations.connections.reveal_rate_per_minute == 0
        print(f"database: {connection.vendor}; Redis: {'yes' if settings.REDIS_URL else 'not configured'}; "
              f"{args.rows} connections, page size {args.page}")
        ours_list = checked(client, "/api/v1/connections", limit=args.page)
        base_list = checked(client, "/bench/baseline/connections", limit=args.page)
        assert len(ours_list().json()["results"]) == len(base_list().json()["results"]) == min(args.page, args.rows)
        compare("list", ours_list, base_list, rounds=args.rounds, seconds=args.seconds)
        ours_reveal = checked(client, "/api/v1/connections/reveal-me/secrets/token")
        base_reveal = checked(client, "/bench/baseline/reveal/reveal-me/token")
        assert ours_reveal().json() == base_reveal().json()
        compare("reveal", ours_reveal, base_reveal, rounds=args.rounds, seconds=args.seconds)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if settings.REDIS_URL:
            from synthorg.redis_client import get_redis

            redis = get_redis()
            keys = list(redis.scan_iter(match=settings.REDIS_KEY_PREFIX + "*", count=1000))
            if keys:
                redis.delete(*keys)


if __name__ == "__main__":
    main()

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

# One Chromium for the whole run: two session fixtures would each start Playwright's sync loop,
# and the second refuses to start inside the first's.
from tests.e2e.browser import browser, page  # noqa: F401
from tests.peers.fixtures import *  # noqa: F403  (OIDC peer, device stub)
from tests.permissions import grant, operator_permissions, reader_permissions

REQUIRE_SERVICES = os.environ.get("SYNTHORG_REQUIRE_SERVICES") == "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not REQUIRE_SERVICES:
        return
    problems = []
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        problems.append("DATABASE_URL must point at PostgreSQL")
    if not settings.REDIS_URL:
        problems.append("REDIS_URL must be set")
    else:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=3).ping()
        except redis.RedisError as exc:
            problems.append(f"Redis at REDIS_URL is unreachable ({exc})")
    if problems:
        pytest.exit("SYNTHORG_REQUIRE_SERVICES=1 but " + "; ".join(problems), returncode=3)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove only the Redis keys this run wrote (its own prefix)."""
    if not settings.REDIS_URL:
        return
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=3)
        keys = list(client.scan_iter(match=settings.REDIS_KEY_PREFIX + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
    except redis.RedisError:
        pass  # nothing to clean if the server is gone


@pytest.fixture(autouse=True)
def _fresh_connection_cache() -> None:
    """A test's rows are rolled back without announcing it: no connection cached by the
    receiver outlives the test that read it."""
    from webhooks.receiver import connection_cache_clear

    connection_cache_clear()


@pytest.fixture(autouse=True)
def _fresh_webhook_buckets() -> Iterator[None]:
    """The receiver's limits are keyed by connection name and source address, which tests
    reuse ("gh", 127.0.0.1): each test starts with full budgets (only this run's keys)."""
    yield
    if not settings.REDIS_URL:
        return
    from synthorg.redis_client import get_redis, redis_key

    client = get_redis()
    keys = [key for pattern in ("webhook:*", "webhook-ip:*")
            for key in client.scan_iter(match=redis_key("rl", "gcra", pattern), count=1000)]
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_client() -> Any:
    """The shared Redis; a test needing it fails (CI) or skips (laptop) without it."""
    if not settings.REDIS_URL:
        if REQUIRE_SERVICES:
            pytest.fail("REDIS_URL is required (SYNTHORG_REQUIRE_SERVICES=1)")
        pytest.skip("needs REDIS_URL")
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture
def user(django_user_model: Any) -> Any:
    """Not staff; holds the reader role (tests/permissions.py): every view permission, no write."""
    user = django_user_model.objects.create_user(username="reader", password="pw-reader-123")
    return grant(user, *reader_permissions())


@pytest.fixture
def staff_user(django_user_model: Any) -> Any:
    """Staff and nothing else: since issue 12 that grants no read and no write in the API."""
    return django_user_model.objects.create_user(username="staff", password="pw-staff-123", is_staff=True)


@pytest.fixture
def operator_user(django_user_model: Any) -> Any:
    """Staff holding the operator role (tests/permissions.py): every model and action permission of
    the service's apps except reveal_secret and view_delivery_payload."""
    user = django_user_model.objects.create_user(username="operator", password="pw-operator-123", is_staff=True)
    return grant(user, *operator_permissions())


@pytest.fixture
def superuser(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser(username="root", password="pw-root-123", email="root@example.com")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_client(staff_user: Any) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=staff_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def operator_client(operator_user: Any) -> APIClient:
    return _token_client(operator_user)


@pytest.fixture
def perm_client(django_user_model: Any) -> Callable[..., APIClient]:
    """`perm_client("integrations.view_connection", ...)`: an API client (token) for a new staff
    user holding exactly those permissions; `client.user` is that user."""
    count = [0]

    def make(*perms: str, staff: bool = True) -> APIClient:
        count[0] += 1
        user = django_user_model.objects.create_user(username=f"holder{count[0]}", password="pw-holder-123",
                                                     is_staff=staff)
        client = _token_client(grant(user, *perms))
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


def _token_client(user: Any) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def user_client(user: Any) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def integrations_config(settings: Any) -> Iterator[Any]:
    """`integrations_config({"webhooks": {"rate_limit_rpm": 5}})` overrides keys for one test."""

    def apply(overrides: dict[str, Any]) -> None:
        settings.SYNTHORG_CONFIG_OVERRIDES = overrides

    yield apply

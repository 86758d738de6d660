"""@with_connection_rate_limit: each connection's own limits, lookup by name, remote pauses."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from integrations.models import Connection
from integrations.ratelimit import (
    RateLimitExceeded,
    RemoteRateLimited,
    get_rate_limiter,
    with_connection_rate_limit,
)
from synthorg.errors import NotFound

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["redis", "database"], autouse=True)
def backend(request: pytest.FixtureRequest, integrations_config: Any, settings: Any) -> str:
    if request.param == "redis":
        request.getfixturevalue("redis_client")
        # Row ids repeat across tests on SQLite (rolled back), so each test gets its own
        # key space, still under the run's prefix that the session cleans up.
        settings.REDIS_KEY_PREFIX = f"{settings.REDIS_KEY_PREFIX}{uuid.uuid4().hex[:8]}:"
    integrations_config({"ratelimit": {"backend": request.param, "max_wait_seconds": 1}})
    return request.param


def make_connection(**limits: int) -> Connection:
    return Connection.objects.create(name=f"conn-{uuid.uuid4().hex[:10]}", connection_type="generic_http",
                                     secret_backend="encrypted_sqlite", **limits)


calls: list[str] = []


@with_connection_rate_limit(wait=False)
def call_tool(connection: Any, payload: str = "x") -> str:
    calls.append(payload)
    return payload


@with_connection_rate_limit("target", wait=False)
def call_remote(target: Any, *, retry_after: float | None = None) -> None:
    if retry_after is not None:
        raise RemoteRateLimited(retry_after)


def successes(func: Any, connection: Any, n: int) -> int:
    done = 0
    for _ in range(n):
        try:
            func(connection)
        except RateLimitExceeded:
            continue
        done += 1
    return done


def test_each_connection_gets_its_own_limits() -> None:
    tight = make_connection(rate_limit_rpm=1, rate_limit_burst=1)
    loose = make_connection(rate_limit_rpm=1, rate_limit_burst=4)
    assert successes(call_tool, tight, 6) == 2
    assert successes(call_tool, loose, 6) == 5


def test_refused_call_does_not_run_and_reports_retry_after() -> None:
    connection = make_connection(rate_limit_rpm=2)
    calls.clear()
    assert call_tool(connection, "first") == "first"
    with pytest.raises(RateLimitExceeded) as caught:
        call_tool(connection, "second")
    assert calls == ["first"]
    assert 29 < caught.value.retry_after <= 30


def test_connection_found_by_name_case_insensitively() -> None:
    connection = make_connection(rate_limit_rpm=1)
    call_tool(connection.name.upper())
    with pytest.raises(RateLimitExceeded):
        call_tool(connection.name.lower())
    with pytest.raises(RateLimitExceeded):
        call_tool(connection)  # the instance shares the name's budget


def test_connection_found_by_primary_key() -> None:
    connection = make_connection(rate_limit_rpm=1)
    call_tool(connection=connection.pk)
    with pytest.raises(RateLimitExceeded):
        call_tool(connection=connection.pk)


def test_unknown_connection_name_is_not_found() -> None:
    with pytest.raises(NotFound):
        call_tool("no-such-connection")


def test_decorating_a_function_without_the_argument_fails_at_once() -> None:
    with pytest.raises(TypeError):
        with_connection_rate_limit("connection")(lambda other: other)


def test_unlimited_connection_is_never_refused() -> None:
    assert successes(call_tool, make_connection(), 30) == 30


def test_remote_retry_after_pauses_the_connection_for_everyone() -> None:
    connection = make_connection(rate_limit_rpm=0)
    with pytest.raises(RemoteRateLimited):
        call_remote(connection, retry_after=30)
    calls.clear()
    # Another tool on the same connection is refused without calling the remote side.
    with pytest.raises(RateLimitExceeded) as caught:
        call_tool(connection.name)
    assert calls == []
    assert 29 < caught.value.retry_after <= 30
    # Other connections are not paused.
    call_tool(make_connection())


def test_duck_typed_retry_after_also_pauses() -> None:
    class ProviderThrottled(Exception):
        retry_after = 20

    @with_connection_rate_limit(wait=False)
    def flaky(connection: Any) -> None:
        raise ProviderThrottled()

    connection = make_connection()
    with pytest.raises(ProviderThrottled):
        flaky(connection)
    with pytest.raises(RateLimitExceeded):
        call_tool(connection)


def test_plain_error_does_not_pause() -> None:
    @with_connection_rate_limit(wait=False)
    def broken(connection: Any) -> None:
        raise ValueError("boom")

    connection = make_connection()
    with pytest.raises(ValueError):
        broken(connection)
    assert call_tool(connection) == "x"


def test_nested_local_refusal_does_not_pause_the_outer_connection() -> None:
    inner = make_connection(rate_limit_rpm=1)
    outer = make_connection()
    call_tool(inner)

    @with_connection_rate_limit(wait=False)
    def outer_tool(connection: Any) -> None:
        call_tool(inner)

    with pytest.raises(RateLimitExceeded):
        outer_tool(outer)
    assert call_tool(outer) == "x"


def test_max_concurrent_applies_to_the_decorated_call() -> None:
    connection = make_connection(rate_limit_max_concurrent=1)
    seen: list[str] = []

    @with_connection_rate_limit(wait=False)
    def reentrant(connection: Any) -> None:
        try:
            call_tool(connection)
        except RateLimitExceeded:
            seen.append("refused")

    reentrant(connection)
    assert seen == ["refused"]
    assert call_tool(connection) == "x"  # the slot was released


def test_waiting_decorator_is_bounded_by_max_wait() -> None:
    @with_connection_rate_limit(wait=True, max_wait=0.5)
    def patient(connection: Any) -> str:
        return "done"

    connection = make_connection(rate_limit_rpm=1)
    assert patient(connection) == "done"
    with pytest.raises(RateLimitExceeded):
        patient(connection)


def test_pause_via_limiter_is_seen_by_decorated_tools() -> None:
    connection = make_connection()
    get_rate_limiter().pause(f"connection:{connection.pk}", 10)
    with pytest.raises(RateLimitExceeded):
        call_tool(connection)

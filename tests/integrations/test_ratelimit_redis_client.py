"""synthorg.redis_client: one cached client per process, every key under the run's prefix."""
from __future__ import annotations

from typing import Any

from synthorg.redis_client import get_redis, redis_key


def test_redis_key_starts_with_the_configured_prefix(settings: Any) -> None:
    settings.REDIS_KEY_PREFIX = "unit-prefix:"
    assert redis_key("rl", "gcra", "connection:7") == "unit-prefix:rl:gcra:connection:7"


def test_unset_redis_url_gives_no_client(settings: Any) -> None:
    settings.REDIS_URL = None
    assert get_redis() is None


def test_client_is_cached_and_talks_to_redis(redis_client: Any) -> None:
    client = get_redis()
    assert client is not None
    assert client is get_redis()
    assert client.ping()
    # Short timeouts: a dead Redis must not hold a web or worker thread for long.
    assert client.connection_pool.connection_kwargs["socket_timeout"] <= 5


def test_changed_redis_url_builds_a_new_client(redis_client: Any, settings: Any) -> None:
    first = get_redis()
    settings.REDIS_URL = settings.REDIS_URL.rsplit("/", 1)[0] + "/1"  # no command is sent
    second = get_redis()
    assert second is not None and second is not first
    assert second.connection_pool.connection_kwargs["db"] == 1

"""The one Redis client of a process, and the key prefix every Redis key must carry.

`get_redis()` returns a `redis.Redis` built once per process from ``settings.REDIS_URL``
(``None`` when Redis is not configured: the embedded mode has no Redis). Its connection pool
is fork-safe (redis-py resets it in a child after ``fork``), so Celery's prefork workers and
gunicorn workers each end up with their own sockets.

`redis_key("ratelimit", "gcra", key)` gives ``<REDIS_KEY_PREFIX>ratelimit:gcra:<key>``. The
Redis server is shared (tests give each run its own prefix and remove only its own keys), so
no code may touch a key that does not start with the prefix.
"""
from __future__ import annotations

import threading
from typing import Any

import redis
from django.conf import settings

# Short timeouts: a call that waits on Redis holds a web or worker thread; failing in
# seconds lets the caller answer 503 instead of piling up requests behind a dead server.
SOCKET_CONNECT_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 2.0
HEALTH_CHECK_INTERVAL_SECONDS = 30

_lock = threading.Lock()
_client: redis.Redis | None = None
_client_url: str | None = None


def get_redis() -> redis.Redis | None:
    """The process's Redis client for ``settings.REDIS_URL``, or ``None`` when it is unset.

    Building the client opens no socket; a dead server shows up as `redis.RedisError` on the
    first command, within the socket timeouts above.
    """
    global _client, _client_url
    url = settings.REDIS_URL
    if not url:
        return None
    client = _client
    if client is not None and _client_url == url:
        return client
    with _lock:
        if _client is None or _client_url != url:
            _client = redis.Redis.from_url(
                url,
                socket_connect_timeout=SOCKET_CONNECT_TIMEOUT_SECONDS,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                health_check_interval=HEALTH_CHECK_INTERVAL_SECONDS,
                retry_on_timeout=False,
            )
            _client_url = url
        return _client


def reset_redis() -> None:
    """Forget the cached client (tests that change REDIS_URL; called on `setting_changed`)."""
    global _client, _client_url
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
        _client_url = None


def redis_key(*parts: Any) -> str:
    """``settings.REDIS_KEY_PREFIX`` followed by the parts joined with ``:``."""
    if not parts:
        raise ValueError("redis_key() needs at least one part")
    return settings.REDIS_KEY_PREFIX + ":".join(str(part) for part in parts)


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting == "REDIS_URL":
        reset_redis()


def _connect_signals() -> None:
    from django.core.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="synthorg.redis_client.reset")


_connect_signals()

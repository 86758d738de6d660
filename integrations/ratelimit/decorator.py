"""`@with_connection_rate_limit`: a tool function obeys its connection's own limits.

The connection is found among the call's arguments, by parameter name: a `Connection`, its
primary key (an int, as Celery tasks pass ids) or its name (a str, matched
case-insensitively). Each call then takes, in this order, a concurrency slot
(``rate_limit_max_concurrent``) and one request of ``rate_limit_rpm`` + ``rate_limit_burst``,
so the request leaves when its rate slot is granted rather than after a wait for a slot.

When the wrapped call raises an exception carrying ``retry_after`` (`RemoteRateLimited`, or
any exception with a numeric ``retry_after`` attribute), the remote API has said "slow down":
the connection is paused for every caller in every process, and the exception propagates.

Plain synchronous code: it works under Celery too, where a worker sleeps at most
``max_wait`` seconds; tasks that would rather not block pass ``wait=False`` and retry with
``countdown=exc.retry_after``.
"""
from __future__ import annotations

import functools
import inspect
import logging
import numbers
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from integrations.ratelimit.errors import RateLimitExceeded
from integrations.ratelimit.limiter import get_rate_limiter
from synthorg.errors import NotFound

if TYPE_CHECKING:
    from integrations.models import Connection

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def connection_rate_limit_key(connection: Connection) -> str:
    """The limiter key of a connection's outbound calls (by id, so a rename keeps its state)."""
    return f"connection:{connection.pk}"


def resolve_connection(value: object) -> Connection:
    """A `Connection` from an instance, a primary key or a case-insensitive name."""
    from integrations.models import Connection

    if isinstance(value, Connection):
        return value
    if isinstance(value, bool):
        raise TypeError("a connection argument cannot be a bool")
    if isinstance(value, int):
        found = Connection.objects.filter(pk=value).first()
    elif isinstance(value, str):
        found = Connection.objects.filter(name__iexact=value).first()
    else:
        raise TypeError(f"cannot find a connection from a {type(value).__name__}")
    if found is None:
        raise NotFound("Connection not found.", code="connection_not_found")
    return found


def remote_retry_after(exc: BaseException) -> float | None:
    """Seconds a remote API asked us to wait, read from ``exc.retry_after``, or None."""
    if isinstance(exc, RateLimitExceeded):
        return None  # our own limit (perhaps of a nested call), not the remote's word
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    seconds = float(value)
    return seconds if seconds > 0 else None


def with_connection_rate_limit(connection_arg: str = "connection", *, wait: bool = True,
                               max_wait: float | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a tool function whose parameter `connection_arg` names its connection.

    Raises `RateLimitExceeded` (``retry_after`` set) when the connection's limits would make
    the call wait longer than ``max_wait`` (default: the config's ``max_wait_seconds``), or at
    once when ``wait`` is false.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)
        if connection_arg not in signature.parameters:
            raise TypeError(f"{func.__qualname__} has no parameter {connection_arg!r}")

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind_partial(*args, **kwargs)
            if connection_arg not in bound.arguments:
                raise TypeError(f"{func.__qualname__}() missing the connection argument {connection_arg!r}")
            connection = resolve_connection(bound.arguments[connection_arg])
            limiter = get_rate_limiter()
            key = connection_rate_limit_key(connection)
            budget = limiter.max_wait_seconds if max_wait is None else max_wait
            started = time.monotonic()
            with limiter.concurrency(key, max_concurrent=connection.rate_limit_max_concurrent,
                                     wait=wait, max_wait=budget):
                # One budget for both waits: what the slot took is not granted again.
                remaining = max(0.0, budget - (time.monotonic() - started))
                limiter.acquire(key, rpm=connection.rate_limit_rpm, burst=connection.rate_limit_burst,
                                wait=wait, max_wait=remaining)
                try:
                    return func(*args, **kwargs)
                except Exception as exc:
                    seconds = remote_retry_after(exc)
                    if seconds is not None:
                        logger.warning("Connection %s was rate limited by the remote side; pausing %.1f s",
                                       connection.pk, seconds)
                        limiter.pause(key, seconds)
                    raise

        return wrapper

    return decorate

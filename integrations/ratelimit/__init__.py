"""The shared rate limiter: GCRA request budgets and concurrency leases, atomic across processes.

Public API::

    get_rate_limiter() -> RateLimiter           # store chosen by integrations.ratelimit.backend
    RateLimiter.acquire(key, *, rpm, burst=0, wait=True, max_wait=None) -> None
    RateLimiter.concurrency(key, *, max_concurrent, wait=True, max_wait=None) -> ContextManager[Lease]
    RateLimiter.pause(key, seconds) -> None
    @with_connection_rate_limit(connection_arg="connection", wait=True, max_wait=None)
    RateLimitExceeded(retry_after)  # our limit; subclass of synthorg.errors.RateLimited
    RemoteRateLimited(retry_after)  # raise it when a remote API says 429 + Retry-After
    RateLimiterUnavailable          # the store is unreachable: a TransientError (and a 503)

Keys are free-form strings (at most 200 characters for the database store); owners pick a
namespace: ``connection:<id>`` (outbound tool calls), ``webhook:<id>``, ``reveal:<user id>``.
"""
from __future__ import annotations

from integrations.ratelimit.decorator import (
    connection_rate_limit_key,
    remote_retry_after,
    resolve_connection,
    with_connection_rate_limit,
)
from integrations.ratelimit.errors import RateLimiterUnavailable, RateLimitExceeded, RemoteRateLimited
from integrations.ratelimit.limiter import Lease, RateLimiter, get_rate_limiter
from integrations.ratelimit.store import Decision, RateLimitStore

__all__ = [
    "Decision",
    "Lease",
    "RateLimitExceeded",
    "RateLimitStore",
    "RateLimiter",
    "RateLimiterUnavailable",
    "RemoteRateLimited",
    "connection_rate_limit_key",
    "get_rate_limiter",
    "remote_retry_after",
    "resolve_connection",
    "with_connection_rate_limit",
]

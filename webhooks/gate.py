"""The receiver's shared-state checks in one Redis round trip: the flood guard, the
per-connection limit and the connection-data generation stamp.

Before the body is read, one Lua script (atomic, on the Redis server's clock):

1. takes one request from the source address's budget (``flood_rpm_per_ip``): refused means 429
   now, and nothing else is touched;
2. *reserves* one request of the connection's budget (``rate_limit_rpm``), keyed by the name
   in the path. The receiver still answers in the issue's order (signature, replay, then
   rate limit): a refused reservation becomes a 429 only for a verified, new delivery;
3. reads the generation stamp (`integrations.generation`) under which the receiver may reuse
   the connection it loaded earlier instead of reading it again.

A reservation the delivery did not use (a 401, a duplicate, a bad body, Slack's challenge) is
handed back (`ReceiptGate.refund`, a second round trip only on those paths), so only accepted
deliveries count against the connection, as when the limit was taken after verification.
Both budgets are the limiter's own GCRA buckets (``webhook-ip:<address>``,
``webhook:<name>``), so pauses and the rest of `integrations.ratelimit` apply to them.

Without Redis (the embedded mode's database store) `ReceiptGate` takes the flood guard through
the limiter, reserves nothing (the receiver takes the connection's limit after verification)
and has no stamp (nothing is cached).

When Redis is configured but unreachable (killed, restarting), the receiver keeps accepting
(issue 13: GitHub never retries a 503): both budgets fall back to buckets in this process's
memory (`integrations.ratelimit.memory_store`). Each refills at this process's share of the
budget, ``rpm / WEB_CONCURRENCY`` (the number of web worker processes, gunicorn's own
variable), so the service as a whole keeps the shared rate; each still takes the whole
budget at once, as the shared bucket does, so a sender's burst is not refused because the
workers happened to hand it all to one process. There is no stamp meanwhile (the connection
is read every time); the delivery is stored and the outbox publishes it once the broker is
back. Redis is tried again `REDIS_RETRY_SECONDS` after a failure, and the fallback is counted
and logged once per minute, not per request.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from prometheus_client import Counter

from integrations import generation
from integrations.ratelimit import RateLimitExceeded, get_rate_limiter
from integrations.ratelimit.memory_store import MemoryStore
from integrations.ratelimit.redis_store import _NOW, GCRA_FUNCTION, RedisStore
from integrations.ratelimit.store import Decision, gcra_parameters
from synthorg import metrics  # noqa: F401 - first: it sets the multiprocess value class the counter uses

logger = logging.getLogger(__name__)

# The number of web worker processes sharing the budgets: gunicorn's own variable, which
# deploy/gunicorn.conf.py reads with the same default.
WEB_WORKERS_ENV = "WEB_CONCURRENCY"
DEFAULT_WEB_WORKERS = 4
# After Redis fails, this process uses its own buckets for this long before asking again, so a
# Redis that times out (rather than refusing at once) costs one timeout per window, not per request.
REDIS_RETRY_SECONDS = 2.0
FALLBACK_LOG_INTERVAL_SECONDS = 60.0
# Scraped at /metrics (synthorg.metrics merges every process's files).
FALLBACK_DECISIONS = Counter(
    "synthorg_webhook_limit_fallback", "Webhook requests whose flood guard and connection limit were decided "
    "by per-process budgets because Redis was unreachable, by decision (admitted, refused).", ["decision"])
_FALLBACK_ADMITTED = FALLBACK_DECISIONS.labels("admitted")
_FALLBACK_REFUSED = FALLBACK_DECISIONS.labels("refused")

# KEYS: address bucket ('' = no flood guard), connection bucket ('' = no limit), stamp key.
# ARGV: now, address interval, limit, connection interval, limit, fresh stamp.
# Returns {address allowed, retry_after, connection allowed, retry_after, stamp}.
GATE = _NOW + GCRA_FUNCTION + generation.GENERATION_FUNCTION + """
if KEYS[1] ~= '' then
  local allowed, retry_after = gcra(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), now)
  if allowed == 0 then
    return {0, fmt(retry_after), 0, '0', ''}
  end
end
local connection_allowed, connection_retry = 1, 0
if KEYS[2] ~= '' then
  connection_allowed, connection_retry = gcra(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), now)
end
return {1, '0', connection_allowed, fmt(connection_retry), connections_generation(KEYS[3], ARGV[6])}
"""

# Hand back one reserved request: the theoretical arrival time moves back one interval.
# KEYS: bucket. ARGV: interval.
REFUND = """
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat'))
if tat then
  redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', tat - tonumber(ARGV[1])))
end
return 1
"""


@dataclass(frozen=True)
class Admission:
    """The gate's answer for one request."""

    # Seconds to announce in Retry-After when the address is over its budget; None = admitted.
    flood_retry_after: float | None = None
    # None: nothing reserved (no limit, or a store that cannot reserve: take it after
    # verification). Otherwise whether the reservation was granted, and when to retry if not.
    connection_reserved: bool | None = None
    connection_retry_after: float = 0.0
    # The connection-data generation stamp; None = do not use cached connections.
    generation: str | None = None
    # True when Redis was unreachable and this process's own buckets decided (`LocalBudgets`).
    local: bool = False


def connection_bucket(connection_name: str) -> str:
    return f"webhook:{connection_name.lower()}"


def address_bucket(remote_ip: str) -> str:
    return f"webhook-ip:{remote_ip}"


@lru_cache(maxsize=64)
def _gcra_args(rpm: int) -> tuple[str, str]:
    """(interval, limit) as the script takes them, for a budget of ``rpm`` per minute."""
    interval, limit = gcra_parameters(rpm, _burst(rpm))
    return f"{interval:.9f}", f"{limit:.9f}"


def _burst(rpm: int) -> int:
    # The burst is the whole minute's budget: senders deliver in bursts, a limit per minute
    # must not also space requests evenly (GCRA with no burst would).
    return rpm - 1


def web_workers() -> int:
    """How many web processes share the budgets: ``WEB_CONCURRENCY``, else gunicorn's default here."""
    try:
        workers = int(os.environ.get(WEB_WORKERS_ENV, "").strip() or DEFAULT_WEB_WORKERS)
    except ValueError:
        return DEFAULT_WEB_WORKERS  # gunicorn.conf.py refuses to start with such a value
    return max(1, workers)


def process_share(rpm: int) -> int:
    """This process's refill rate, per minute, of a budget of ``rpm`` while Redis is down (at least 1)."""
    return max(1, math.ceil(rpm / web_workers()))


def _local_take(store: MemoryStore, key: str, rpm: int) -> Decision:
    # Refills at this process's share; holds the whole budget, like the shared bucket (`_burst`).
    return store.acquire(key, rpm=process_share(rpm), burst=_burst(rpm))


class LocalBudgets:
    """The flood guard and connection limits in this process's memory, for Redis outages.

    Counts what it admits and logs it once per ``FALLBACK_LOG_INTERVAL_SECONDS`` (a line per
    request would flood the log exactly when Redis is down).
    """

    def __init__(self, *, monotonic: Any = time.monotonic) -> None:
        self.store = MemoryStore(monotonic=monotonic)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.total = 0  # requests decided here since the process started
        self._since_log = 0
        self._logged_at: float | None = None
        self._down_until = 0.0
        self._outage_started: float | None = None

    def redis_skipped(self) -> bool:
        """Whether Redis failed less than `REDIS_RETRY_SECONDS` ago (then it is not asked)."""
        return self._monotonic() < self._down_until

    def redis_failed(self, exc: Exception) -> None:
        now = self._monotonic()
        with self._lock:
            self._down_until = now + REDIS_RETRY_SECONDS
            if self._outage_started is None:
                self._outage_started = now
                logger.warning("the shared rate limiter (Redis) is unreachable: the webhook receiver admits "
                               "under per-process budgets (refilling at 1/%d of each) until it is back: %s",
                               web_workers(), exc)

    def redis_answered(self) -> None:
        if self._outage_started is None:
            return
        with self._lock:
            if self._outage_started is not None:
                logger.warning("the shared rate limiter (Redis) is reachable again after %.0f s; %d requests "
                               "were decided by per-process budgets", self._monotonic() - self._outage_started,
                               self._since_log)
                self._outage_started = None
                self._since_log = 0
                self._logged_at = None

    def enter(self, *, remote_ip: str | None, connection_name: str, flood_rpm: int,
              connection_rpm: int) -> Admission:
        self._count()
        if flood_rpm and remote_ip:
            decision = _local_take(self.store, address_bucket(remote_ip), flood_rpm)
            if not decision.allowed:
                _FALLBACK_REFUSED.inc()
                return Admission(flood_retry_after=decision.retry_after, local=True)
        if not connection_rpm:
            _FALLBACK_ADMITTED.inc()
            return Admission(local=True)
        decision = _local_take(self.store, connection_bucket(connection_name), connection_rpm)
        (_FALLBACK_ADMITTED if decision.allowed else _FALLBACK_REFUSED).inc()
        return Admission(connection_reserved=decision.allowed, connection_retry_after=decision.retry_after,
                         local=True)

    def refund(self, *, connection_name: str, connection_rpm: int) -> None:
        self.store.refund(connection_bucket(connection_name), rpm=process_share(connection_rpm))

    def _count(self) -> None:
        now = self._monotonic()
        with self._lock:
            self.total += 1
            self._since_log += 1
            if self._logged_at is None:
                self._logged_at = now
            elif now - self._logged_at >= FALLBACK_LOG_INTERVAL_SECONDS:
                logger.warning("the shared rate limiter (Redis) is still unreachable: %d requests in the last "
                               "%.0f s were decided by per-process budgets (refilling at 1/%d of each)",
                               self._since_log, now - self._logged_at, web_workers())
                self._since_log = 0
                self._logged_at = now


# One per process: the buckets must outlive the gate objects (rebuilt when the client changes).
local_budgets = LocalBudgets()


class PendingAdmission:
    """The gate's request on its way: sent to Redis by `ReceiptGate.begin`, its answer read by
    `result` (issue 15 §7). Between the two the receiver reads and checks the body, so the round
    trip overlaps work instead of adding to it. `close` must follow (the view's ``finally``): a
    connection whose answer was never read is dropped, never handed back to the pool.
    """

    __slots__ = ("_admission", "_connection", "_gate", "_request")

    def __init__(self, gate: ReceiptGate, *, admission: Admission | None = None, connection: Any = None,
                 request: dict[str, Any] | None = None) -> None:
        self._gate = gate
        self._admission = admission
        self._connection = connection
        self._request = request or {}

    def result(self) -> Admission:
        if self._admission is None:
            self._admission = self._read()
        return self._admission

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.disconnect()  # an answer may still be on its way: never reuse the socket
            self._gate.client.connection_pool.release(connection)

    def _read(self) -> Admission:
        gate, request = self._gate, self._request
        connection, self._connection = self._connection, None
        pool = gate.client.connection_pool
        try:
            reply = connection.read_response()
        except redis.exceptions.NoScriptError:
            pool.release(connection)  # the error was the whole answer: the connection is clean
            try:
                reply = gate._gate(keys=request["keys"], args=request["args"])  # loads the script again
            except redis.RedisError as exc:
                return gate._fallback(exc, request)
        except (redis.RedisError, OSError) as exc:
            connection.disconnect()
            pool.release(connection)
            return gate._fallback(exc, request)
        else:
            pool.release(connection)
        gate.local.redis_answered()
        return gate._admission(reply, request["connection_rpm"])


class ReceiptGate:
    def __init__(self, client: redis.Redis | None, local: LocalBudgets | None = None) -> None:
        self.client = client
        self.local = local or local_budgets
        if client is not None:
            self._gate = client.register_script(GATE)
            self._refund = client.register_script(REFUND)

    def enter(self, *, remote_ip: str | None, connection_name: str, flood_rpm: int,
              connection_rpm: int) -> Admission:
        """`begin` and `PendingAdmission.result` in one call."""
        pending = self.begin(remote_ip=remote_ip, connection_name=connection_name, flood_rpm=flood_rpm,
                             connection_rpm=connection_rpm)
        try:
            return pending.result()
        finally:
            pending.close()

    def begin(self, *, remote_ip: str | None, connection_name: str, flood_rpm: int,
              connection_rpm: int) -> PendingAdmission:
        """Send the gate's script to Redis and return without waiting for its answer."""
        if self.client is None:
            return PendingAdmission(self, admission=self._enter_without_redis(remote_ip=remote_ip,
                                                                              flood_rpm=flood_rpm))
        request = {"remote_ip": remote_ip, "connection_name": connection_name, "flood_rpm": flood_rpm,
                   "connection_rpm": connection_rpm}
        if self.local.redis_skipped():
            return PendingAdmission(self, admission=self._local_enter(request))
        keys = ["", "", generation.generation_key()]
        args = ["", "0", "0", "0", "0", generation.fresh_stamp()]
        if flood_rpm and remote_ip:
            keys[0] = RedisStore.bucket_key(address_bucket(remote_ip))
            args[1:3] = _gcra_args(flood_rpm)
        if connection_rpm:
            keys[1] = RedisStore.bucket_key(connection_bucket(connection_name))
            args[3:5] = _gcra_args(connection_rpm)
        request["keys"], request["args"] = keys, args
        pool = self.client.connection_pool
        try:
            connection = pool.get_connection()
        except (redis.RedisError, OSError) as exc:
            return PendingAdmission(self, admission=self._fallback(exc, request))
        try:
            # EVALSHA on a connection of its own, not through Redis.execute_command: its answer is
            # read later, and redis-py's generic path costs more CPU than the round trip.
            try:
                connection.send_command("EVALSHA", self._gate.sha, len(keys), *keys, *args)
            except redis.ConnectionError:
                # A pooled socket the server closed (a restart): once more on a new one, as
                # redis-py's own retry would; the script cannot have run.
                connection.disconnect()
                connection.send_command("EVALSHA", self._gate.sha, len(keys), *keys, *args)
        except (redis.RedisError, OSError) as exc:
            connection.disconnect()
            pool.release(connection)
            return PendingAdmission(self, admission=self._fallback(exc, request))
        return PendingAdmission(self, connection=connection, request=request)

    def _fallback(self, exc: Exception, request: dict[str, Any]) -> Admission:
        # Keep receiving (a sender such as GitHub never retries a 503): this process's share
        # of each budget decides until Redis answers again, without the stamp (no cached
        # connections); the outbox publishes the deliveries once the broker is back.
        self.local.redis_failed(exc)
        return self._local_enter(request)

    def _local_enter(self, request: dict[str, Any]) -> Admission:
        return self.local.enter(remote_ip=request["remote_ip"], connection_name=request["connection_name"],
                                flood_rpm=request["flood_rpm"], connection_rpm=request["connection_rpm"])

    @staticmethod
    def _admission(reply: Any, connection_rpm: int) -> Admission:
        if int(reply[0]) == 0:
            return Admission(flood_retry_after=float(reply[1]))
        stamp = reply[4].decode() if isinstance(reply[4], bytes) else str(reply[4])
        return Admission(connection_reserved=bool(int(reply[2])) if connection_rpm else None,
                         connection_retry_after=float(reply[3]), generation=stamp)

    def _call(self, script: Any, keys: list[str], args: list[str]) -> Any:
        # EVALSHA directly: redis-py's Script.__call__ spends more CPU on checking its client
        # (a runtime Protocol isinstance) than the round trip; it still loads the script when
        # the server lost it (a restart).
        try:
            return self.client.evalsha(script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return script(keys=keys, args=args)

    def _enter_without_redis(self, *, remote_ip: str | None, flood_rpm: int) -> Admission:
        if flood_rpm and remote_ip:
            try:
                get_rate_limiter().acquire(address_bucket(remote_ip), rpm=flood_rpm, burst=_burst(flood_rpm),
                                           wait=False)
            except RateLimitExceeded as exc:
                return Admission(flood_retry_after=exc.retry_after)
        return Admission()

    def refund(self, *, connection_name: str, connection_rpm: int, local: bool = False) -> None:
        """Give back a reservation the delivery did not use (best effort: it expires anyway)."""
        if local and connection_rpm:
            self.local.refund(connection_name=connection_name, connection_rpm=connection_rpm)
            return
        # Not while Redis is known down: a Redis that times out would hold every response for it.
        if self.client is None or not connection_rpm or self.local.redis_skipped():
            return
        try:
            self._call(self._refund, [RedisStore.bucket_key(connection_bucket(connection_name))],
                       [_gcra_args(connection_rpm)[0]])
        except redis.RedisError as exc:
            self.local.redis_failed(exc)  # the next requests use this process's budgets, not a timeout each


_gates: dict[int, ReceiptGate] = {}


def get_gate() -> ReceiptGate:
    """The gate for this process's Redis client (scripts registered once per client), or one
    without Redis when the limiter's backend is the database."""
    from synthorg.config import get_config
    from synthorg.redis_client import get_redis

    backend = get_config().integrations.ratelimit.backend
    client = get_redis() if backend in ("auto", "redis") else None
    gate = _gates.get(id(client))
    if gate is None or gate.client is not client:
        _gates.clear()
        gate = _gates[id(client)] = ReceiptGate(client)
    return gate

"""The Redis store: each operation is one Lua script, so it is atomic across every process.

Scripts read the clock with ``TIME`` on the Redis server (unless a test passes ``now``), so
machines whose clocks disagree still share one timeline. Numbers cross the Lua boundary as
strings formatted with ``%.6f``: Redis truncates Lua numbers to integers, and Lua's own
``tostring`` keeps only 14 significant digits (0.1 ms at today's epoch).

Keys: ``<prefix>rl:gcra:<key>`` is a hash {tat, paused_until}; ``<prefix>rl:lease:<key>`` a
sorted set of lease tokens scored by their expiry. Both carry a TTL so idle keys vanish.
"""
from __future__ import annotations

import redis

from integrations.ratelimit.store import ALLOWED, Decision, gcra_parameters
from synthorg.redis_client import redis_key

_NOW = """
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.6f', x) end
"""

# GCRA on one bucket: interval 0 only checks the pause. Returns allowed (1/0), retry_after.
# Shared with scripts that take several buckets in one round trip (webhooks.gate).
GCRA_FUNCTION = """
local function gcra(key, interval, limit, now)
  local state = redis.call('HMGET', key, 'tat', 'paused_until')
  local tat = tonumber(state[1]) or 0
  local paused_until = tonumber(state[2]) or 0
  if paused_until > now then
    return 0, paused_until - now
  end
  if interval <= 0 then
    return 1, 0
  end
  local new_tat = math.max(tat, now) + interval
  local allow_at = new_tat - limit
  if allow_at > now then
    return 0, allow_at - now
  end
  redis.call('HSET', key, 'tat', fmt(new_tat))
  redis.call('PEXPIRE', key, math.ceil((math.max(new_tat, paused_until) - now) * 1000) + 1000)
  return 1, 0
end
"""

# ARGV: now, interval (0 = pause check only), limit.  Returns {allowed, retry_after}.
GCRA_ACQUIRE = _NOW + GCRA_FUNCTION + """
local allowed, retry_after = gcra(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), now)
return {allowed, fmt(retry_after)}
"""

# ARGV: now, seconds.
PAUSE = _NOW + """
local until_ = now + tonumber(ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
if until_ > current then
  redis.call('HSET', KEYS[1], 'paused_until', fmt(until_))
  local tat = tonumber(redis.call('HGET', KEYS[1], 'tat')) or 0
  redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(until_, tat) - now) * 1000) + 1000)
end
return 1
"""

# ARGV: now, max_concurrent, lease_seconds, token.  Expired leases are dropped first, so a
# holder that died without releasing gives its slot back once its lease runs out.
LEASE_ACQUIRE = _NOW + """
local max_concurrent = tonumber(ARGV[2])
local expires = now + tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
if redis.call('ZCARD', KEYS[1]) < max_concurrent then
  redis.call('ZADD', KEYS[1], fmt(expires), ARGV[4])
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(last[2]) - now) * 1000) + 1000)
  return {1, '0'}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, fmt(math.max(tonumber(first[2]) - now, 0))}
"""

# ARGV: now, lease_seconds, token.  Returns 1 when the lease was still alive and is extended.
LEASE_RENEW = _NOW + """
local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[3]))
if score == nil or score <= now then
  return 0
end
local expires = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', fmt(expires), ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(last[2]) - now) * 1000) + 1000)
return 1
"""


def _now_arg(now: float | None) -> str:
    return "" if now is None else f"{now:.6f}"


def _decision(reply: list[bytes | int]) -> Decision:
    if int(reply[0]) == 1:
        return ALLOWED
    return Decision(False, max(0.0, float(reply[1])))


class RedisStore:
    name = "redis"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        # register_script runs EVALSHA and falls back to EVAL once after a server restart.
        self._gcra = client.register_script(GCRA_ACQUIRE)
        self._pause = client.register_script(PAUSE)
        self._lease_acquire = client.register_script(LEASE_ACQUIRE)
        self._lease_renew = client.register_script(LEASE_RENEW)

    @staticmethod
    def bucket_key(key: str) -> str:
        return redis_key("rl", "gcra", key)

    @staticmethod
    def lease_key(key: str) -> str:
        return redis_key("rl", "lease", key)

    def acquire(self, key: str, *, rpm: int, burst: int, now: float | None = None) -> Decision:
        if rpm > 0:
            interval, limit = gcra_parameters(rpm, burst)
        else:
            interval, limit = 0.0, 0.0
        reply = self._gcra(keys=[self.bucket_key(key)], args=[_now_arg(now), f"{interval:.9f}", f"{limit:.9f}"])
        return _decision(reply)

    def pause(self, key: str, seconds: float, *, now: float | None = None) -> None:
        if seconds <= 0:
            return
        self._pause(keys=[self.bucket_key(key)], args=[_now_arg(now), f"{seconds:.6f}"])

    def lease_acquire(self, key: str, *, max_concurrent: int, token: str, lease_seconds: float,
                      now: float | None = None) -> Decision:
        reply = self._lease_acquire(keys=[self.lease_key(key)],
                                    args=[_now_arg(now), max_concurrent, f"{lease_seconds:.6f}", token])
        return _decision(reply)

    def lease_renew(self, key: str, *, token: str, lease_seconds: float, now: float | None = None) -> bool:
        reply = self._lease_renew(keys=[self.lease_key(key)], args=[_now_arg(now), f"{lease_seconds:.6f}", token])
        return int(reply) == 1

    def lease_release(self, key: str, *, token: str) -> None:
        self.client.zrem(self.lease_key(key), token)

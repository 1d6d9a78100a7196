"""Throttle counters (GES "Redis"): windowed counts shared by every replica, or in memory when
embedded, or in this replica's memory while the Redis is unreachable (``FallbackCounters``)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from abc import ABC, abstractmethod

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from dialback.throttle.resp import RespLink

log = logging.getLogger("dialback.throttle")


class Counters(ABC):
    """Windowed counters shared by every replica."""

    @abstractmethod
    async def incr_many(self, keys: list[tuple[str, int]]) -> list[int]:
        """Increment each key (with its TTL in seconds, set on first use); return new values."""

    @abstractmethod
    async def decr(self, key: str) -> None:
        """Give back one unit of a counter (when a booking is refused after counting)."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise when the store is unreachable."""

    async def close(self) -> None:
        """Release connections."""
        return None


# INCR each key; give it its TTL when it has none (a new key, or one a DECR re-created after it
# expired), like EXPIRE ... NX. One EVALSHA is one command: far less client CPU than a pipeline.
_INCR_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
    out[i] = redis.call('INCR', key)
    if redis.call('TTL', key) == -1 then
        redis.call('EXPIRE', key, ARGV[i])
    end
end
return out
"""


class RedisCounters(Counters):
    """Counters in Redis: one EVALSHA (one command, one round trip) per request, on a
    ``RespLink`` when there is one."""

    def __init__(
        self, client: aioredis.Redis, prefix: str = "dialback:", link: RespLink | None = None
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.link = link
        self._sha = hashlib.sha1(_INCR_MANY.encode()).hexdigest()

    async def incr_many(self, keys: list[tuple[str, int]]) -> list[int]:
        names = [self.prefix + key for key, _ttl in keys]
        args = [ttl for _key, ttl in keys]
        call = self.link.execute if self.link is not None else self.client.execute_command
        try:
            res = await call("EVALSHA", self._sha, len(names), *names, *args)
        except NoScriptError:  # a new or restarted server: load the script once
            await call("SCRIPT", "LOAD", _INCR_MANY)
            res = await call("EVALSHA", self._sha, len(names), *names, *args)
        return [int(v) for v in res]

    async def decr(self, key: str) -> None:
        await self.client.decr(self.prefix + key)

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
        await self.client.aclose()


class MemoryCounters(Counters):
    """Counters in this process, for the embedded single-process mode."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float]] = {}

    async def incr_many(self, keys: list[tuple[str, int]]) -> list[int]:
        now = time.monotonic()
        out = []
        for key, ttl in keys:
            value, expires = self._values.get(key, (0, now + ttl))
            if expires <= now:
                value, expires = 0, now + ttl
            value += 1
            self._values[key] = (value, expires)
            out.append(value)
        if len(self._values) > 100_000:
            self._values = {k: v for k, v in self._values.items() if v[1] > now}
        return out

    async def decr(self, key: str) -> None:
        if key in self._values:
            value, expires = self._values[key]
            self._values[key] = (value - 1, expires)

    async def ping(self) -> None:
        return None

    def take(self) -> list[tuple[str, int, float]]:
        """Every live counter as (key, value, seconds left), and forget them all."""
        now = time.monotonic()
        values, self._values = self._values, {}
        return [(k, v, exp - now) for k, (v, exp) in values.items() if v > 0 and exp > now]


# Add what a replica counted alone during an outage; a key the server does not hold (it came
# back empty, or the window ended there) gets the remaining TTL of the replica's own count.
_ADD_MANY = """
for i, key in ipairs(KEYS) do
    redis.call('INCRBY', key, ARGV[2 * i - 1])
    if redis.call('TTL', key) == -1 then
        redis.call('EXPIRE', key, ARGV[2 * i])
    end
end
return #KEYS
"""

# Redis refused or never answered: connection lost or refused, timeout, LOADING, READONLY, OOM...
_REDIS_DOWN = (RedisError, OSError, TimeoutError)


class FallbackCounters(Counters):
    """Redis counters that keep counting in this replica's memory while Redis is unreachable.

    Throttles are not worth an outage (GES keeps REDIS_CONNECTION out of GES_HEALTH): a failed
    command opens a circuit, and for ``retry_seconds`` every count is made in memory without
    touching Redis, so no request waits on a dead server. Then a probe in the background (or a
    successful health check) closes the circuit and adds the counts made in memory to Redis,
    so the windows stay honest. The approximation: in an outage each replica counts alone,
    so a limit of N admits up to N x replicas.
    """

    def __init__(self, redis: RedisCounters, *, retry_seconds: float = 5.0) -> None:
        self.redis = redis
        self.retry_seconds = retry_seconds
        self.memory = MemoryCounters()
        self._retry_at: float | None = None  # None: Redis is in use
        self._probe: asyncio.Task[None] | None = None

    @property
    def degraded(self) -> bool:
        """Whether counts are made in this replica's memory now."""
        return self._retry_at is not None

    async def incr_many(self, keys: list[tuple[str, int]]) -> list[int]:
        if self._retry_at is None:
            try:
                return await self.redis.incr_many(keys)
            except _REDIS_DOWN as exc:
                self._trip(exc)
        else:
            self._maybe_probe()
        return await self.memory.incr_many(keys)

    async def decr(self, key: str) -> None:
        if self._retry_at is None:
            try:
                await self.redis.decr(key)
                return
            except _REDIS_DOWN as exc:
                self._trip(exc)
        await self.memory.decr(key)

    async def ping(self) -> None:
        await self.redis.ping()
        if self._retry_at is not None:
            await self._recover()

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        await self.redis.close()

    def _trip(self, exc: BaseException) -> None:
        if self._retry_at is None:
            log.warning(
                "dialback's Redis is unreachable (%s): throttles count in this replica's "
                "memory until it is back",
                str(exc)[:200] or type(exc).__name__,
            )
        self._retry_at = time.monotonic() + self.retry_seconds

    def _maybe_probe(self) -> None:
        assert self._retry_at is not None
        if self._probe is None and time.monotonic() >= self._retry_at:
            self._probe = asyncio.create_task(self._probe_once(), name="throttle-redis-probe")

    async def _probe_once(self) -> None:
        try:
            await self.redis.ping()
            await self._recover()
        except _REDIS_DOWN as exc:
            self._trip(exc)
        finally:
            self._probe = None

    async def _recover(self) -> None:
        """Count in Redis again, then add to it what this replica counted meanwhile."""
        if self._retry_at is None:
            return
        self._retry_at = None
        counted = self.memory.take()
        try:
            for start in range(0, len(counted), 500):
                chunk = counted[start : start + 500]
                args: list[int] = []
                for _key, value, left in chunk:
                    args += [value, max(1, int(left) + 1)]
                await self.redis.client.eval(
                    _ADD_MANY, len(chunk), *(self.redis.prefix + k for k, _v, _l in chunk), *args
                )
        except _REDIS_DOWN as exc:
            self._trip(exc)  # counts not added are lost: those windows undercount a little
            return
        log.info(
            "dialback's Redis is back: throttles count there again (%d counters from this "
            "replica's memory added)",
            len(counted),
        )

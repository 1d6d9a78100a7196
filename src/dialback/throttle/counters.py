"""Throttle counters (GES "Redis"): windowed counts shared by every replica, or in memory when
embedded."""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from dialback.throttle.resp import RespLink


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

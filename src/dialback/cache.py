"""dialback's own fast state (GES "Redis"): throttle counters. Redis, or memory when embedded."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import redis.asyncio as aioredis


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


class RedisCounters(Counters):
    """Counters in Redis: one pipeline (one round trip) per request."""

    def __init__(self, client: aioredis.Redis, prefix: str = "dialback:") -> None:
        self.client = client
        self.prefix = prefix

    async def incr_many(self, keys: list[tuple[str, int]]) -> list[int]:
        async with self.client.pipeline(transaction=False) as pipe:
            for key, ttl in keys:
                pipe.incr(self.prefix + key)
                pipe.expire(self.prefix + key, ttl, nx=True)
            res = await pipe.execute()
        return [int(v) for v in res[0::2]]

    async def decr(self, key: str) -> None:
        await self.client.decr(self.prefix + key)

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
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

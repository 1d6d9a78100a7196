"""The circuit of ``FallbackCounters``: one failure moves counting to memory at once, Redis is
left alone until the retry time, and what memory counted is added back when it answers.

A pure unit test: the Redis side is a stand-in (tests/integration/test_throttle_fallback.py
runs the same against a real Redis killed and frozen)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from dialback.throttle.counters import FallbackCounters, RedisCounters


class _Client:
    def __init__(self) -> None:
        self.evals: list[tuple[Any, ...]] = []

    async def eval(self, script: str, n: int, *args: Any) -> int:
        self.evals.append(args)
        return n


class _Redis(RedisCounters):
    """Answers like Redis while ``up``; refuses every command otherwise."""

    def __init__(self) -> None:
        super().__init__(_Client())  # type: ignore[arg-type]
        self.up = True
        self.calls = 0
        self.values: dict[str, int] = {}

    def _check(self) -> None:
        self.calls += 1
        if not self.up:
            raise RedisConnectionError("refused")

    async def incr_many(self, keys: list[tuple[str, int]]) -> list[int]:
        self._check()
        out = []
        for key, _ttl in keys:
            self.values[key] = self.values.get(key, 0) + 1
            out.append(self.values[key])
        return out

    async def decr(self, key: str) -> None:
        self._check()
        self.values[key] -= 1

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        return None


async def test_the_circuit_counts_in_memory_without_touching_redis_then_reconciles() -> None:
    redis = _Redis()
    counters = FallbackCounters(redis, retry_seconds=0.2)
    assert await counters.incr_many([("ten:a:1", 60)]) == [1]
    redis.up = False
    # The failing command is answered from memory, and so is everything until the retry time.
    assert await counters.incr_many([("ten:a:1", 60)]) == [1]
    assert counters.degraded
    calls = redis.calls
    for _ in range(50):
        await counters.incr_many([("ten:a:1", 60), ("num:x:1", 120)])
    await counters.decr("ten:a:1")
    assert redis.calls == calls  # nobody waited on the dead server
    # Past the retry time a request starts one probe in the background (and is not held).
    await asyncio.sleep(0.25)
    assert await counters.incr_many([("ten:a:1", 60)]) == [51]
    await asyncio.sleep(0.01)
    assert redis.calls == calls + 1 and counters.degraded  # the probe failed: wait again
    redis.up = True
    await asyncio.sleep(0.25)
    await counters.incr_many([("ten:a:1", 60)])  # starts the probe, still from memory
    await asyncio.sleep(0.01)
    assert not counters.degraded
    # Back on Redis; what memory counted (net of the give-back) was added, with TTLs left.
    [args] = redis.client.evals  # type: ignore[attr-defined]
    names, rest = args[:2], args[2:]
    assert names == ("dialback:ten:a:1", "dialback:num:x:1")
    assert rest[0] == 52 and rest[2] == 50
    assert 0 < rest[1] <= 61 and 0 < rest[3] <= 121
    assert await counters.incr_many([("ten:a:1", 60)]) == [2]  # the stand-in's own count
    await counters.close()


async def test_a_health_check_that_reaches_redis_closes_the_circuit() -> None:
    redis = _Redis()
    counters = FallbackCounters(redis, retry_seconds=60)
    redis.up = False
    await counters.incr_many([("ten:a:1", 60)])
    assert counters.degraded
    redis.up = True
    await counters.ping()
    assert not counters.degraded and len(redis.client.evals) == 1  # type: ignore[attr-defined]

"""TtlCache: one load per key at a time, stale values served while one reload runs."""

from __future__ import annotations

import asyncio

import pytest

from dialback.kit.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A loader that counts its calls and can be held open or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.version = 1
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def load(self, key: str) -> str:
        self.calls += 1
        value = f"{key}-v{self.version}"  # what the database held when the query ran
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("database down")
        return value


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_concurrent_misses_share_one_load(clock: Clock) -> None:
    src = Source()
    cache = TtlCache(src.load, lambda _v: 10.0, max_entries=10, clock=clock)
    src.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(cache.get("a")) for _ in range(20)]
    await asyncio.sleep(0)
    src.gate.set()
    assert await asyncio.gather(*waiting) == ["a-v1"] * 20
    assert src.calls == 1
    assert await cache.get("a") == "a-v1" and src.calls == 1  # fresh: from the cache


async def test_an_expired_value_is_served_while_one_reload_runs(clock: Clock) -> None:
    src = Source()
    cache = TtlCache(src.load, lambda _v: 10.0, max_entries=10, clock=clock)
    assert await cache.get("a") == "a-v1"
    src.version, src.gate = 2, asyncio.Event()
    clock.now += 11  # expired, within the stale period
    assert [await cache.get("a") for _ in range(5)] == ["a-v1"] * 5
    await asyncio.sleep(0)  # the reload starts
    assert src.calls == 2  # one reload for the five requests
    src.gate.set()
    await asyncio.sleep(0.01)
    assert await cache.get("a") == "a-v2" and src.calls == 2


async def test_past_the_stale_period_requests_wait_for_the_load(clock: Clock) -> None:
    src = Source()
    cache = TtlCache(src.load, lambda _v: 10.0, max_entries=10, clock=clock)
    await cache.get("a")
    src.version = 2
    clock.now += 25  # past expiry + ttl
    assert await cache.get("a") == "a-v2"


async def test_a_failed_reload_ends_the_stale_period(clock: Clock) -> None:
    src = Source()
    cache = TtlCache(src.load, lambda _v: 10.0, max_entries=10, clock=clock)
    await cache.get("a")
    src.fail = True
    clock.now += 11
    assert await cache.get("a") == "a-v1"  # stale, the reload starts
    await asyncio.sleep(0.01)
    with pytest.raises(ConnectionError):
        await cache.get("a")


async def test_invalidate_wins_over_a_load_under_way(clock: Clock) -> None:
    src = Source()
    cache = TtlCache(src.load, lambda _v: 10.0, max_entries=10, clock=clock)
    src.gate = asyncio.Event()
    first = asyncio.ensure_future(cache.get("a"))
    while src.calls == 0:  # the load is under way
        await asyncio.sleep(0)
    cache.invalidate("a")  # e.g. the admin API changed the service meanwhile
    src.version = 2
    src.gate.set()
    assert await first == "a-v1"  # the request already under way gets what it loaded
    assert await cache.get("a") == "a-v2"  # ... but it was not kept
    assert src.calls == 2


async def test_ttl_per_value_and_size_bound(clock: Clock) -> None:
    src = Source()
    cache = TtlCache(
        src.load, lambda v: 1.0 if v.startswith("miss") else 30.0, max_entries=2, clock=clock
    )
    await cache.get("miss")
    await cache.get("hit")
    clock.now += 2.5  # the miss is past its stale period, the hit still fresh
    await cache.get("miss")
    await cache.get("hit")
    assert src.calls == 3
    await cache.get("third")  # over the bound: the cache starts again
    await cache.get("hit")
    assert src.calls == 5

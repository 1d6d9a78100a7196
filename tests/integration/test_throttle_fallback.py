"""dialback's own Redis (the throttle counters) down: bookings go on, counted per replica.

Two replicas (two runtimes) on one PostgreSQL and one real Redis; the Redis is killed under a
burst of creates and started again (empty, as a non-persistent Redis comes back).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from testbed.metrics_parse import parse, value
from testbed.servers import RedisServer

from tests.support.stack import make_settings, started_stack, wait_for

CREATE = "/engagement/v3/callbacks/create"
FAST = {
    "health_check_min_seconds": 0.2,
    "health_check_max_seconds": 0.3,
    "health_check_timeout_seconds": 1.0,
    "redis_fallback_retry_seconds": 0.5,
}
LIMIT = 12  # the tenant's callbacks per window
WINDOW = 30 * 86400  # one window for the whole test (a boundary inside it is unlikely)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def _number(i: int) -> str:
    return f"+1415555{i:04d}"


async def test_bookings_go_on_while_the_throttle_redis_is_down(
    pg_url: str, own_redis: RedisServer
) -> None:
    settings = make_settings(database_url=pg_url, redis_url=own_redis.url, **FAST)
    # A window long enough for the whole test, so every count lands in one window.
    throttle = {"throttle": {"maxCallbacks": LIMIT, "windowSeconds": WINDOW}}
    async with started_stack(settings) as one, started_stack(settings) as two:
        key = await one.tenant(settings=throttle)
        replicas = (one, two)

        async def create(i: int) -> int:
            stack = replicas[i % 2]
            r = await stack.public.post(
                CREATE,
                json={"serviceName": "sales", "phoneNumber": _number(i)},
                headers={"x-api-key": key},
            )
            assert r.status_code in (200, 429), r.text
            return r.status_code

        # Before the outage the window is shared: 4 bookings through either replica.
        assert [await create(i) for i in range(4)] == [200] * 4

        own_redis.stop()
        started = time.monotonic()
        burst = await asyncio.gather(*(create(i) for i in range(4, 4 + 8)))
        # Never stalled on the dead Redis, every booking accepted: none is a 503.
        assert burst == [200] * 8
        assert time.monotonic() - started < 3
        # Each replica now counts alone from 0: LIMIT more each (LIMIT x replicas at most).
        more = [await create(i) for i in range(12, 12 + 2 * LIMIT + 4)]
        assert more.count(200) == 2 * LIMIT - 8

        async def gauge_down() -> bool:
            samples = parse((await one.internal.get("/metrics")).text)
            return value(samples, "REDIS_CONNECTION") == 1

        await wait_for(gauge_down, timeout=5)
        ready = await one.internal.get("/health/ready")
        # Not required: a replica without its Redis still books (the gauge and alert tell).
        assert ready.status_code == 200, ready.text
        assert ready.json()["dependencies"]["redis"]["status"] == "down"
        samples = parse((await one.internal.get("/metrics")).text)
        assert value(samples, "GES_HEALTH") == 0
        assert value(samples, "UNCAUGHT_EXCEPTION") == 0

        own_redis.start()  # empty: a non-persistent Redis comes back with no data

        async def gauge_up() -> bool:
            samples = parse((await one.internal.get("/metrics")).text)
            return value(samples, "REDIS_CONNECTION") == 0

        await wait_for(gauge_up, timeout=8)
        await asyncio.sleep(FAST["redis_fallback_retry_seconds"] + 0.1)
        await create(100)
        # Counters live in Redis again, with what each replica counted in the outage added.
        client = aioredis.from_url(own_redis.url, decode_responses=True)
        try:

            async def reconciled() -> int:
                names = await client.keys("dialback:ten:*")
                return sum([int(await client.get(n) or 0) for n in names])

            total = await wait_for(
                lambda: _at_least(reconciled, 2 * LIMIT), timeout=5, interval=0.1
            )
            assert total
            for name in await client.keys("dialback:ten:*"):
                assert 0 < await client.ttl(name) <= WINDOW
        finally:
            await client.aclose()
        # Both replicas are full for this window now: the shared count is at the limit.
        assert [await create(i) for i in range(200, 204)] == [429] * 4


async def _at_least(read, floor: int) -> int:  # type: ignore[no-untyped-def]
    got = await read()
    return got if got >= floor else 0


async def test_a_frozen_redis_stalls_no_booking_and_call_ins_go_on(
    pg_url: str, own_redis: RedisServer
) -> None:
    """SIGSTOP: connections stay open and nothing answers. The first commands time out after
    ``redis_command_timeout_seconds`` together; every later one is counted in memory at once."""
    settings = make_settings(
        database_url=pg_url, redis_url=own_redis.url, redis_command_timeout_seconds=0.5, **FAST
    )
    async with started_stack(settings) as stack:
        key = await stack.tenant()
        r = await stack.internal.put(
            "/admin/v1/tenants/acme/callin-groups/support", json={"numbers": ["+14155550100"]}
        )
        assert r.status_code in (200, 201), r.text
        assert own_redis.pid is not None
        os.kill(own_redis.pid, signal.SIGSTOP)
        try:

            async def create(i: int) -> tuple[int, float]:
                started = time.monotonic()
                r = await stack.public.post(
                    CREATE,
                    json={"serviceName": "sales", "phoneNumber": _number(i)},
                    headers={"x-api-key": key},
                )
                return r.status_code, time.monotonic() - started

            first = await asyncio.gather(*(create(i) for i in range(10)))
            assert [code for code, _ in first] == [200] * 10
            assert max(took for _, took in first) < 2
            later = [await create(i) for i in range(10, 30)]
            assert [code for code, _ in later] == [200] * 20
            assert max(took for _, took in later) < 0.3  # no request waits on Redis any more
            r = await stack.public.post(
                "/engagement/v3/call-in/requests/create",
                json={"groupName": "support"},
                headers={"x-api-key": key},
            )
            assert r.status_code == 200, r.text
        finally:
            os.kill(own_redis.pid, signal.SIGCONT)
        value_of = parse((await stack.internal.get("/metrics")).text)
        assert value(value_of, "UNCAUGHT_EXCEPTION") == 0

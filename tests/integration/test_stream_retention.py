"""Routing-stream retention on a real Redis: only what every group was delivered and
acknowledged is trimmed, and only dead consumers without pending entries are removed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from dialback.routing.transport import RedisTransport

STREAM, OUT, GROUP, ROUTING = "NewCallbackStream", "CallbackOutcomeStream", "dialback", "engine"


@pytest.fixture
async def transport(routing_redis_url: str) -> AsyncIterator[RedisTransport]:
    client = aioredis.from_url(routing_redis_url, decode_responses=True)
    t = RedisTransport(
        client,
        dispatch_stream=STREAM,
        outcome_stream=OUT,
        outcome_group=GROUP,
        routing_group=ROUTING,
        dedup_ttl=60,
    )
    await t.ensure_groups()
    yield t
    await t.close()


async def add(t: RedisTransport, stream: str, n: int) -> list[str]:
    return [await t.client.xadd(stream, {"type": "callback", "id": f"cb-{i}"}) for i in range(n)]


async def ids(t: RedisTransport, stream: str) -> list[str]:
    return [i for i, _ in await t.client.xrange(stream)]


async def read(t: RedisTransport, stream: str, group: str, consumer: str, n: int) -> list[str]:
    resp = await t.client.xreadgroup(group, consumer, {stream: ">"}, count=n)
    return [i for _s, entries in resp for i, _f in entries]


async def test_only_delivered_and_acknowledged_entries_below_the_oldest_pending_go(
    transport: RedisTransport,
) -> None:
    t = transport
    e = await add(t, STREAM, 10)
    got = await read(t, STREAM, ROUTING, "engine-1", 6)
    assert got == e[:6]
    await t.client.xack(STREAM, ROUTING, e[0], e[1], e[3], e[4])  # e[2] and e[5] stay pending

    # With a margin of 2 entries nothing below the oldest pending one can go yet.
    assert await t.trim_streams(2, 0, 100) == 0
    # Margin 1: only e[0] (e[1] is the kept margin).
    assert await t.trim_streams(1, 0, 100) == 1
    assert await ids(t, STREAM) == e[1:]
    # No margin: e[1] goes; e[3] and e[4] are acknowledged but newer than the pending e[2].
    assert await t.trim_streams(0, 0, 100) == 1
    assert await ids(t, STREAM) == e[2:]
    # A young-entry margin (an hour) keeps everything.
    await t.client.xack(STREAM, ROUTING, e[2], e[5])
    assert await t.trim_streams(0, 3_600_000, 100) == 0
    # Every delivered entry acknowledged: e[2..5] go, in batches of at most ``limit``; the four
    # never delivered (e[6..9]) stay whatever is asked.
    assert await t.trim_streams(0, 0, 3) == 3
    assert await t.trim_streams(0, 0, 3) == 1
    assert await t.trim_streams(0, 0, 3) == 0
    assert await ids(t, STREAM) == e[6:]


async def test_a_group_that_was_delivered_nothing_keeps_the_whole_stream(
    transport: RedisTransport,
) -> None:
    t = transport
    e = await add(t, STREAM, 5)
    assert await read(t, STREAM, ROUTING, "engine-1", 5) == e
    await t.client.xack(STREAM, ROUTING, *e)
    await t.client.xgroup_create(STREAM, "audit-dialer", id="0")  # a second reader, behind
    assert await t.trim_streams(0, 0, 100) == 0
    assert await ids(t, STREAM) == e
    # Once it has read and acknowledged two, those two go.
    got = await read(t, STREAM, "audit-dialer", "d-1", 2)
    await t.client.xack(STREAM, "audit-dialer", *got)
    assert await t.trim_streams(0, 0, 100) == 2
    assert await ids(t, STREAM) == e[2:]


async def test_a_stream_without_groups_or_entries_is_left_alone(
    transport: RedisTransport,
) -> None:
    t = transport
    await t.client.delete(STREAM, OUT)
    assert await t.trim_streams(0, 0, 100) == 0
    await add(t, STREAM, 3)  # no group at all: no one was delivered anything
    assert await t.trim_streams(0, 0, 100) == 0
    assert len(await ids(t, STREAM)) == 3


async def test_the_outcome_stream_is_trimmed_by_the_outcome_group(
    transport: RedisTransport,
) -> None:
    t = transport
    e = await add(t, OUT, 4)
    entries = await t.read_outcomes("replica-a", 10, 10)
    assert [i for i, _ in entries] == e
    await t.ack_outcomes(e[:3])
    assert await t.trim_streams(0, 0, 100) == 3
    assert await ids(t, OUT) == e[3:]


async def test_only_idle_consumers_without_pending_entries_are_removed(
    transport: RedisTransport,
) -> None:
    t = transport
    e = await add(t, OUT, 3)
    assert await read(t, OUT, GROUP, "dead-acked", 1) == e[:1]
    await t.client.xack(OUT, GROUP, e[0])
    assert await read(t, OUT, GROUP, "dead-pending", 1) == e[1:2]  # never acknowledged
    assert await read(t, OUT, GROUP, "this-replica", 1) == e[2:]
    await t.client.xack(OUT, GROUP, e[2])
    await asyncio.sleep(0.3)
    await t.client.xgroup_createconsumer(OUT, GROUP, "live-replica")  # idle ~0 ms: alive
    # Another group's consumers are not the outcome group's to remove.
    await t.client.xgroup_createconsumer(STREAM, ROUTING, "engine-old")

    assert await t.remove_dead_consumers(200, keep=["this-replica"], limit=100) == 1
    names = {c["name"] for c in await t.client.xinfo_consumers(OUT, GROUP)}
    assert names == {"dead-pending", "this-replica", "live-replica"}
    assert await t.client.xpending(OUT, GROUP) == {
        "pending": 1,
        "min": e[1],
        "max": e[1],
        "consumers": [{"name": "dead-pending", "pending": 1}],
    }
    assert {c["name"] for c in await t.client.xinfo_consumers(STREAM, ROUTING)} == {"engine-old"}


async def test_dead_consumers_go_in_bounded_batches(transport: RedisTransport) -> None:
    t = transport
    for i in range(5):
        await t.client.xgroup_createconsumer(OUT, GROUP, f"gone-{i}")
    await asyncio.sleep(0.25)
    assert await t.remove_dead_consumers(200, keep=[], limit=2) == 2
    assert await t.remove_dead_consumers(200, keep=[], limit=2) == 2
    assert await t.remove_dead_consumers(200, keep=[], limit=2) == 1
    assert await t.client.xinfo_consumers(OUT, GROUP) == []


async def test_a_missing_stream_or_group_removes_nothing(transport: RedisTransport) -> None:
    await transport.client.delete(OUT)
    assert await transport.remove_dead_consumers(0, keep=[], limit=10) == 0


async def test_scrubbing_deletes_every_dispatch_of_erased_callbacks_only(
    transport: RedisTransport,
) -> None:
    t = transport
    gone = [
        await t.client.xadd(STREAM, {"type": "callback", "id": "erased", "attempt": str(a)})
        for a in (1, 2)
    ]
    kept = await t.client.xadd(STREAM, {"type": "callback", "id": "other", "attempt": "1"})
    got = await read(t, STREAM, ROUTING, "engine-1", 2)  # attempt 1 acked, attempt 2 pending
    assert got == gone
    await t.client.xack(STREAM, ROUTING, gone[0])
    late = await t.client.xadd(STREAM, {"type": "callback", "id": "erased", "attempt": "3"})
    await t.publish_cancel("erased", 2)

    assert await t.scrub_dispatches(["erased"]) == 3
    remaining = await t.client.xrange(STREAM)
    assert [(f["type"], f["id"]) for _i, f in remaining] == [
        ("callback", "other"),
        ("cancel", "erased"),
    ]
    assert remaining[0][0] == kept and late not in [i for i, _ in remaining]
    # The pending (now deleted) entry is still acknowledged as usual.
    assert await t.client.xack(STREAM, ROUTING, gone[1]) == 1
    assert await t.scrub_dispatches([]) == 0


async def test_scrubbing_reads_a_long_stream_in_chunks(
    transport: RedisTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialback.routing import transport as module

    monkeypatch.setattr(module, "_SCRUB_CHUNK", 3)
    t = transport
    for i in range(10):
        await t.client.xadd(STREAM, {"type": "callback", "id": "erased" if i % 4 == 0 else f"x{i}"})
    assert await t.scrub_dispatches(["erased"]) == 3
    assert len(await ids(t, STREAM)) == 7

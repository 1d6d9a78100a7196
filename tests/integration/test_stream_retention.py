"""Routing-stream retention on a real Redis: only what every group was delivered and
acknowledged is trimmed, and only dead consumers without pending entries are removed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from dialback.db.schema import callbacks
from dialback.routing.transport import RedisTransport
from tests.support.stack import Stack, started_stack, wait_for

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
    added = [await t.client.xadd(stream, {"type": "callback", "id": f"cb-{i}"}) for i in range(n)]
    # A trim with no time margin keeps what is not older than Redis's clock's millisecond: let
    # one pass, or a fast machine sees "nothing old enough" (the flake this sleep removes).
    await asyncio.sleep(0.005)
    return added


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


async def test_a_sweep_trims_the_streams_and_removes_dead_replicas_consumers(
    settings_with: Any,
) -> None:
    settings = settings_with(
        simulator="on",
        retention_enabled=False,
        retention_stream_margin_entries=0,
        retention_stream_margin_seconds=0,
        retention_consumer_idle_seconds=0.2,
    )
    async with started_stack(settings) as s:
        key = await s.tenant("acme")
        ids = []
        for i in range(4):
            r = await s.public.post(
                "/engagement/v3/callbacks/create",
                json={"serviceName": "sales", "phoneNumber": f"+1415555{i:04d}"},
                headers={"x-api-key": key},
            )
            ids.append(r.json()["data"]["id"])
        await wait_for(lambda: _all_completed(s, ids), timeout=20)
        t = s.rt.transport
        assert isinstance(t, RedisTransport)
        # Consumers of replicas killed earlier: gone for good, nothing pending.
        for i in range(3):
            await t.client.xgroup_createconsumer(t.outcome_stream, t.outcome_group, f"dead-{i}")
        await asyncio.sleep(0.3)
        await wait_for(lambda: _acked(t), timeout=10)
        dispatched = len(await t.client.xrange(t.dispatch_stream))
        assert dispatched >= 4

        report = await s.rt.retention.sweep()

        assert report.counts["stream_consumers"] == 3
        names = {
            c["name"] for c in await t.client.xinfo_consumers(t.outcome_stream, t.outcome_group)
        }
        assert not any(n.startswith("dead-") for n in names)
        assert s.rt.instance_id in names
        assert report.counts["stream_entries"] >= dispatched
        # What is left of each stream is only what some group has not acknowledged yet.
        for stream in (t.dispatch_stream, t.outcome_stream):
            for eid, _f in await t.client.xrange(stream):
                assert await _still_needed(t, stream, eid), (stream, eid)
        m = s.rt.metrics.ges_retention_purged_total
        assert m.value(("stream_consumers",)) == 3
        assert m.value(("stream_entries",)) == report.counts["stream_entries"]


async def _all_completed(s: Stack, ids: list[str]) -> bool:
    async with s.rt.engine.connect() as conn:
        q = sa.select(callbacks.c.state).where(callbacks.c.id.in_(ids))
        return set((await conn.execute(q)).scalars()) == {"COMPLETED"}


async def _acked(t: RedisTransport) -> bool:
    for stream in (t.dispatch_stream, t.outcome_stream):
        for g in await t.client.xinfo_groups(stream):
            if g["pending"]:
                return False
    return True


def _id(eid: str) -> tuple[int, int]:
    ms, seq = eid.split("-")
    return int(ms), int(seq)


async def _still_needed(t: RedisTransport, stream: str, eid: str) -> bool:
    """Some group was not delivered the entry, or has it (or an older one) pending."""
    for g in await t.client.xinfo_groups(stream):
        if _id(eid) > _id(g["last-delivered-id"]):
            return True
        pending = await t.client.xpending(stream, g["name"])
        if pending["pending"] and _id(pending["min"]) <= _id(eid):
            return True
    return False

"""The batched dispatch path: one publish script per batch, raw claims, the overlapped pipeline."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from testbed.metrics_parse import parse, value
from testbed.servers import PostgresServer

from dialback.callbacks import repository as callbacks_repo
from dialback.container import Container
from dialback.db.engine import create_engine
from dialback.db.migrations import migrate
from dialback.db.schema import callback_events, callbacks
from dialback.monitor.monitor import CallbackMonitor, dispatch_fields
from dialback.routing import transport as transport_mod
from dialback.routing.messages import Dispatch
from dialback.routing.transport import RedisTransport
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.stack import SettingsFactory, make_settings, wait_for

STREAM = "NewCallbackStream"
# Values the JSON-packed script argument must carry through byte for byte.
AWKWARD = [
    'quote " backslash \\ slash /',
    "line\nbreak\ttab\r\x00nul\x1fus",
    "é ü ß — “curly” 日本語 😀",
    "",
    "1e3",
    "null",
    "[]",
    '{"orderId":"A-1001","n":[1,2]}',
]


def _transport(url: str) -> RedisTransport:
    return RedisTransport(
        aioredis.from_url(url, decode_responses=True),
        dispatch_stream=STREAM,
        outcome_stream="CallbackOutcomeStream",
        outcome_group="dialback",
        routing_group="routing-engine",
        dedup_ttl=60,
    )


def _dispatch(cid: str, attempt: int = 1, **extra: str) -> Dispatch:
    return Dispatch(cid, attempt, {"type": "callback", "id": cid, "attempt": str(attempt), **extra})


async def _entries(url: str) -> list[dict[str, str]]:
    client = aioredis.from_url(url, decode_responses=True)
    try:
        return [f for _id, f in await client.xrange(STREAM)]
    finally:
        await client.aclose()


async def test_batch_publish_is_once_per_attempt_and_reports_which_were_new(
    routing_redis_url: str,
) -> None:
    t = _transport(routing_redis_url)
    try:
        ids = [str(uuid.uuid4()) for _ in range(5)]
        assert await t.publish([_dispatch(i) for i in ids[:3]]) == [True, True, True]
        # Mixed: two already published, one new attempt of a published callback, two new.
        again = [
            _dispatch(ids[0]),
            _dispatch(ids[3]),
            _dispatch(ids[1]),
            _dispatch(ids[0], attempt=2),
            _dispatch(ids[4]),
        ]
        assert await t.publish(again) == [False, True, False, True, True]
        assert await t.publish([]) == []
        published = Counter((f["id"], f["attempt"]) for f in await _entries(routing_redis_url))
        assert len(published) == 6 and max(published.values()) == 1
    finally:
        await t.close()


async def test_batch_publish_carries_every_value_exactly_in_field_order(
    routing_redis_url: str,
) -> None:
    t = _transport(routing_redis_url)
    try:
        ds = [
            _dispatch(str(uuid.uuid4()), userData=v, **{"z-last": "z", "a-after": "a"})
            for v in AWKWARD
        ]
        # A dispatch with other fields in the same call goes in its own run, in order.
        odd = Dispatch("odd", 1, {"type": "callback", "id": "odd", "only": "this"})
        assert await t.publish([*ds[:4], odd, *ds[4:]]) == [True] * (len(ds) + 1)
        entries = await _entries(routing_redis_url)
        assert [e["id"] for e in entries] == [d.id for d in ds[:4]] + ["odd"] + [
            d.id for d in ds[4:]
        ]
        by_id = {e["id"]: e for e in entries}
        for d in ds:
            assert by_id[d.id] == d.fields
            assert list(by_id[d.id]) == list(d.fields)  # XADD kept the field order
        assert by_id["odd"] == odd.fields
    finally:
        await t.close()


async def test_batch_publish_splits_big_batches_into_bounded_script_calls(
    routing_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_mod, "_PUBLISH_CHUNK", 7)
    t = _transport(routing_redis_url)
    calls = 0
    script = t._script

    async def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await script(*args, **kwargs)

    t._script = counting  # type: ignore[assignment]
    try:
        ids = [str(uuid.uuid4()) for _ in range(30)]
        first = await t.publish([_dispatch(i) for i in ids[:10]])
        assert first == [True] * 10 and calls == 2
        res = await t.publish([_dispatch(i) for i in ids])
        assert res == [False] * 10 + [True] * 20 and calls == 2 + 5
        assert len(await _entries(routing_redis_url)) == 30
    finally:
        await t.close()


async def test_claimed_rows_carry_compact_user_data_and_the_same_fields_as_sqlite(
    pg_url: str, tmp_path: Path
) -> None:
    user_data = {"orderId": "A-1001", "nested": {"k": [1, 2.5, None, True]}, "é": "ü 😀"}
    due = 1_790_000_000.25
    fields = {}
    for url in (pg_url, f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"):
        rt = Container(make_settings(database_url=url, simulator="off", monitor_enabled=False))
        try:
            if url.startswith("sqlite"):
                await migrate(rt.engine)
            tenant_id, service_id = await tenant_and_service(rt.engine)
            [cid] = await insert_due_callbacks(
                rt.engine,
                tenant_id,
                service_id,
                1,
                due_at=due,
                desired_time=due - 60,
                user_data=user_data,
                priority=7,
                id="00000000-0000-4000-8000-000000000001",
                params={"routePoint": "RP1", "offerThreshold": 90, "pushTargets": [{"c": "t"}]},
            )
            async with rt.engine.begin() as conn:
                [row], unreadable = await callbacks_repo.claim_due(conn, "me", time.time(), 30, 10)
            assert unreadable == []
            assert row.id == cid and row.attempt == 1
            assert orjson.loads(row.user_data) == user_data
            # Compact JSON, as the stream always carried (PostgreSQL orders jsonb keys its way).
            assert row.user_data == orjson.dumps(orjson.loads(row.user_data)).decode()
            fields[url[:6]] = dispatch_fields(row, "Out", 1_790_000_100.5)
        finally:
            await rt.engine.dispose()
    pg_ud, lite_ud = fields["postgr"].pop("userData"), fields["sqlite"].pop("userData")
    assert orjson.loads(pg_ud) == orjson.loads(lite_ud) == user_data
    assert fields["postgr"].pop("tenant") != fields["sqlite"].pop("tenant")  # each store's own
    assert fields["postgr"] == fields["sqlite"]
    f = fields["postgr"]
    assert f["dueTime"] == "2026-09-21T14:13:20.250Z"
    assert f["desiredTime"] == "2026-09-21T14:12:20.250Z"
    assert f["publishedAt"] == "2026-09-21T14:15:00.500Z"
    assert f["priority"] == "7" and f["attempt"] == "1" and f["outcomeStream"] == "Out"
    assert f["routePoint"] == "RP1" and f["offerThreshold"] == "90" and f["inboundVQ"] == ""
    assert "pushTargets" not in f


async def test_a_batch_whose_lease_ran_out_before_publishing_is_dropped_then_reclaimed_once(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    settings = settings_with(
        simulator="off",
        monitor_enabled=False,
        monitor_lease_seconds=0.3,
    )
    rt = Container(settings)
    tenant_id, service_id = await tenant_and_service(rt.engine)
    ids = await insert_due_callbacks(rt.engine, tenant_id, service_id, 5)
    await rt.start()
    try:
        assert rt.monitor is None
        mon = CallbackMonitor(
            rt.engine, rt.transport, rt.lifecycle, rt.events, rt.settings, owner=rt.instance_id
        )
        batch = await mon._claim()
        assert batch is not None and len(batch.rows) == 5
        await asyncio.sleep(0.4)
        assert await mon._publish(batch) is None  # lease over: published nothing
        assert await _entries(routing_redis_url) == []
        # The expired leases are claimed again and go out exactly once.
        assert await mon.dispatch_once() == 5
        assert await mon.dispatch_once() == 0
        published = Counter(f["id"] for f in await _entries(routing_redis_url))
        assert set(published) == set(ids) and max(published.values()) == 1
        async with rt.engine.connect() as conn:
            states = Counter((await conn.execute(sa.select(callbacks.c.state))).scalars())
            events = (
                await conn.execute(
                    sa.select(sa.func.count()).where(callback_events.c.to_state == "QUEUED")
                )
            ).scalar()
        assert states == Counter({"QUEUED": 5}) and events == 5
    finally:
        await rt.stop()


async def test_pipelined_drain_marks_each_callback_once_with_its_attempt(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    settings = settings_with(
        simulator="off",
        monitor_batch_size=40,
    )
    rt = Container(settings)
    tenant_id, service_id = await tenant_and_service(rt.engine)
    first = await insert_due_callbacks(rt.engine, tenant_id, service_id, 300)
    retried = await insert_due_callbacks(rt.engine, tenant_id, service_id, 45, attempt=2)
    await rt.start()
    try:

        async def drained() -> bool:
            async with rt.engine.connect() as conn:
                n = (
                    await conn.execute(
                        sa.select(sa.func.count()).where(callbacks.c.state == "QUEUED")
                    )
                ).scalar()
            return n == 345

        await wait_for(drained, timeout=30)
        metrics = parse(rt.metrics.registry.render())
        assert value(metrics, "ges_dispatch_lateness_seconds_count") == 345
        async with rt.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        callback_events.c.callback_id,
                        callback_events.c.attempt,
                        callback_events.c.from_state,
                    ).where(callback_events.c.to_state == "QUEUED")
                )
            ).all()
            leased = (
                await conn.execute(
                    sa.select(sa.func.count()).where(callbacks.c.lease_owner.is_not(None))
                )
            ).scalar()
        assert len(rows) == 345 and leased == 0
        assert {r.callback_id: r.attempt for r in rows} == {
            **dict.fromkeys(first, 1),
            **dict.fromkeys(retried, 2),
        }
        assert {r.from_state for r in rows} == {"SCHEDULED"}
        published = Counter((f["id"], f["attempt"]) for f in await _entries(routing_redis_url))
        assert len(published) == 345 and max(published.values()) == 1
    finally:
        await rt.stop()


async def test_the_monitor_recovers_when_postgresql_restarts(
    settings_with: SettingsFactory, routing_redis_url: str, own_postgres: PostgresServer
) -> None:
    pg = own_postgres
    settings = settings_with(
        database_url=pg.url("dialback"),
        simulator="off",
    )
    rt = Container(settings)
    await rt.start()
    outside = create_engine(pg.url("dialback"))
    try:
        tenant_id, service_id = await tenant_and_service(outside)
        await insert_due_callbacks(outside, tenant_id, service_id, 3)

        async def queued(n: int) -> bool:
            async with outside.connect() as conn:
                got = (
                    await conn.execute(
                        sa.select(sa.func.count()).where(callbacks.c.state == "QUEUED")
                    )
                ).scalar()
            return got == n

        await wait_for(lambda: queued(3), timeout=10)
        pg.stop()
        await asyncio.sleep(1.0)  # dispatch cycles fail meanwhile
        pg.restart()
        await outside.dispose()
        await insert_due_callbacks(outside, tenant_id, service_id, 3)
        # The pooled connections that died are dropped, not reused forever.
        await wait_for(lambda: queued(6), timeout=20)
        published = Counter(f["id"] for f in await _entries(routing_redis_url))
        assert len(published) == 6 and max(published.values()) == 1
        # An outage of PostgreSQL is not a bug of dialback's: no UNCAUGHT_EXCEPTION for it.
        metrics = parse(rt.metrics.registry.render())
        assert value(metrics, "UNCAUGHT_EXCEPTION") == 0
    finally:
        await rt.stop()
        await outside.dispose()


async def test_a_callback_cancelled_while_being_dispatched_is_announced_after_its_entry(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    # The cancel finds the callback SCHEDULED (leased, its entry not yet or just published) and
    # announces nothing; the monitor's mark then tells the routing engine to drop that attempt.
    rt = Container(settings_with(simulator="off", monitor_enabled=False))
    tenant_id, service_id = await tenant_and_service(rt.engine)
    before, after, kept = await insert_due_callbacks(rt.engine, tenant_id, service_id, 3)
    await rt.start()
    try:
        mon = CallbackMonitor(
            rt.engine, rt.transport, rt.lifecycle, rt.events, rt.settings, owner=rt.instance_id
        )
        batch = await mon._claim()
        assert batch is not None and {r.id for r in batch.rows} == {before, after, kept}
        await rt.callbacks.admin_cancel(before)  # claimed, not yet published
        published_at = await mon._publish(batch)
        assert published_at is not None
        await rt.callbacks.admin_cancel(after)  # published, not yet marked
        await mon._mark(batch, published_at)
        got = [(f["type"], f["id"], f["attempt"]) for f in await _entries(routing_redis_url)]
        dispatched = [e for e in got if e[0] == "callback"]
        assert sorted(dispatched) == sorted(("callback", c, "1") for c in (before, after, kept))
        # One cancel for each cancelled attempt, after the entries (one publish: all of them).
        assert got[len(dispatched) :] in (
            [("cancel", before, "1"), ("cancel", after, "1")],
            [("cancel", after, "1"), ("cancel", before, "1")],
        )
        async with rt.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(callbacks.c.id, callbacks.c.state, callbacks.c.reason)
            )
            states = {cid: (state, reason) for cid, state, reason in rows}
        assert states == {
            before: ("COMPLETED", "cancelled"),
            after: ("COMPLETED", "cancelled"),
            kept: ("QUEUED", None),
        }
    finally:
        await rt.stop()

"""The callback monitor: exactly-once dispatch across replicas, lease reclaim, outcomes, retries."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import redis.asyncio as aioredis
import sqlalchemy as sa
from testbed.metrics_parse import parse, value

from dialback.callbacks import repository as callbacks_repo
from dialback.container import Container
from dialback.db.schema import callback_events, callbacks
from dialback.monitor.monitor import dispatch_fields
from dialback.routing.messages import Dispatch, Outcome
from dialback.settings import Settings
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.stack import SettingsFactory, wait_for

STREAM = "NewCallbackStream"


async def stream_ids(url: str) -> Counter[tuple[str, str]]:
    client = aioredis.from_url(url, decode_responses=True)
    try:
        entries = await client.xrange(STREAM)
    finally:
        await client.aclose()
    return Counter((f["id"], f["attempt"]) for _i, f in entries if f.get("type") == "callback")


async def container_with_due(
    settings: Settings, n: int, due_at: float | None = None
) -> tuple[Container, list[str]]:
    """A replica on ``settings`` (not started) and the ids of ``n`` callbacks due at ``due_at``."""
    rt = Container(settings)
    tenant_id, service_id = await tenant_and_service(rt.engine)
    return rt, await insert_due_callbacks(rt.engine, tenant_id, service_id, n, due_at=due_at)


def dispatched(rt: Container) -> float:
    """Callbacks this replica's monitor dispatched (its lateness histogram's count)."""
    return value(parse(rt.metrics.registry.render()), "ges_dispatch_lateness_seconds_count")


async def states(rt: Container) -> Counter[str]:
    async with rt.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(callbacks.c.state, sa.func.count()).group_by(callbacks.c.state)
        )
        return Counter({s: n for s, n in rows})


async def test_two_monitors_dispatch_1000_due_callbacks_exactly_once(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    settings = settings_with(simulator="off", monitor_batch_size=50)
    a, b = Container(settings), Container(settings.model_copy())
    tenant_id, service_id = await tenant_and_service(a.engine)
    ids = await insert_due_callbacks(a.engine, tenant_id, service_id, 1000)
    await a.start()
    await b.start()
    try:

        async def all_queued() -> bool:
            return (await states(a))["QUEUED"] == 1000

        await wait_for(all_queued, timeout=60)
        published = await stream_ids(routing_redis_url)
        assert len(published) == 1000
        assert set(cid for cid, _ in published) == set(ids)
        assert max(published.values()) == 1, "a callback was published twice"
        done_a, done_b = dispatched(a), dispatched(b)
        assert done_a + done_b == 1000
        assert done_a > 0 and done_b > 0, "one replica did all work"
    finally:
        await a.stop()
        await b.stop()


async def test_expired_leases_of_a_dead_monitor_are_reclaimed_without_duplicates(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    settings = settings_with(simulator="off", monitor_lease_seconds=1.0)
    dead, _ids = await container_with_due(settings, 40)
    now = time.time()
    # A monitor claims 40 callbacks, publishes half of them, then dies before marking any.
    async with dead.engine.begin() as conn:
        claimed, _ = await callbacks_repo.claim_due(conn, "dead-monitor", now, 1.0, 100)
    assert len(claimed) == 40
    half = claimed[:20]
    await dead.transport.publish(
        [Dispatch(r.id, r.attempt, dispatch_fields(r, settings.outcome_stream, now)) for r in half]
    )
    await dead.stop()

    rt = Container(settings.model_copy())
    await rt.start()
    try:
        # Leased rows are not touched before the lease expires.
        await asyncio.sleep(0.3)
        assert (await states(rt))["QUEUED"] == 0

        async def all_queued() -> bool:
            return (await states(rt))["QUEUED"] == 40

        await wait_for(all_queued, timeout=15)
        published = await stream_ids(routing_redis_url)
        assert len(published) == 40
        assert max(published.values()) == 1
    finally:
        await rt.stop()


async def test_an_idle_monitor_wakes_when_the_next_callback_comes_due_not_at_its_poll(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    # A poll far longer than the wait: only the sleep until the next due time publishes in time.
    settings = settings_with(simulator="off", monitor_poll_seconds=30.0)
    due = time.time() + 1.5
    rt, [cid] = await container_with_due(settings, 1, due_at=due)
    await rt.start()
    try:

        async def published() -> Counter[tuple[str, str]]:
            return await stream_ids(routing_redis_url)

        assert await stream_ids(routing_redis_url) == Counter(), "published before it was due"
        assert await wait_for(published, timeout=10) == Counter({(cid, "1"): 1})
        lateness = time.time() - due
        assert lateness < 1.0, f"published {lateness:.2f} s after it came due"
    finally:
        await rt.stop()


async def test_outcomes_move_state_and_unanswered_attempts_retry(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    settings = settings_with(simulator="off")
    rt = Container(settings)
    tenant_id, service_id = await tenant_and_service(rt.engine)
    async with rt.engine.begin() as conn:
        from dialback.db.schema import services

        await conn.execute(
            services.update()
            .where(services.c.id == service_id)
            .values(
                config={
                    "businessHours": {"alwaysOpen": True},
                    "retry": {"maxAttempts": 2, "delaySeconds": 0},
                }
            )
        )
    [cid] = await insert_due_callbacks(rt.engine, tenant_id, service_id, 1, max_attempts=2)
    await rt.start()
    try:

        async def state_of() -> tuple[str, int, str | None]:
            async with rt.engine.connect() as conn:
                row = (await conn.execute(sa.select(callbacks).where(callbacks.c.id == cid))).one()
            return row.state, row.attempt, row.reason

        await wait_for(lambda: _eq(state_of, ("QUEUED", 1, None)))
        emit = rt.transport.emit_outcome
        await emit(Outcome(cid, 1, "ROUTING", None, time.time()))
        await wait_for(lambda: _eq(state_of, ("ROUTING", 1, None)))
        await emit(Outcome(cid, 1, "COMPLETED", "no-answer", time.time()))
        # The retry is attempt 2, dispatched again (QUEUED) after a zero delay.
        await wait_for(lambda: _eq(state_of, ("QUEUED", 2, None)))
        # A late, stale event for attempt 1 changes nothing.
        await emit(Outcome(cid, 1, "PROCESSING", None, time.time()))
        await emit(Outcome(cid, 2, "COMPLETED", "busy", time.time()))
        await wait_for(lambda: _eq(state_of, ("COMPLETED", 2, "busy")))
        published = await stream_ids(routing_redis_url)
        assert published == Counter({(cid, "1"): 1, (cid, "2"): 1})
        async with rt.engine.connect() as conn:
            hist = (
                await conn.execute(
                    sa.select(
                        callback_events.c.to_state,
                        callback_events.c.reason,
                        callback_events.c.attempt,
                    )
                    .where(callback_events.c.callback_id == cid)
                    .order_by(callback_events.c.id)
                )
            ).all()
        assert [tuple(h) for h in hist] == [
            ("QUEUED", None, 1),
            ("ROUTING", None, 1),
            ("COMPLETED", "no-answer", 1),
            ("SCHEDULED", "retry", 2),
            ("QUEUED", None, 2),
            ("COMPLETED", "busy", 2),
        ]
    finally:
        await rt.stop()


async def _eq(fn, expected):  # type: ignore[no-untyped-def]
    return (await fn()) == expected


async def test_malformed_outcome_events_are_skipped_not_fatal(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    settings = settings_with(simulator="off")
    rt = Container(settings)
    tenant_id, service_id = await tenant_and_service(rt.engine)
    [cid] = await insert_due_callbacks(rt.engine, tenant_id, service_id, 1)
    await rt.start()
    try:
        client = aioredis.from_url(routing_redis_url, decode_responses=True)
        await client.xadd(settings.outcome_stream, {"id": cid, "attempt": "x", "event": "ROUTING"})
        await client.xadd(settings.outcome_stream, {"id": cid, "attempt": "1", "event": "EXPLODE"})
        await client.xadd(
            settings.outcome_stream,
            {"id": cid, "attempt": "1", "event": "COMPLETED", "reason": "answered"},
        )
        await client.aclose()

        async def done() -> bool:
            return (await states(rt))["COMPLETED"] == 1

        await wait_for(done)
    finally:
        await rt.stop()

"""Routed states have deadlines: nothing stays QUEUED, ROUTING or PROCESSING for ever, and a
routing Redis that restarts empty loses no callback (docs/routing.md#deadlines)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from testbed.metrics_parse import parse, value
from testbed.servers import RedisServer

from dialback.container import Container, redis_client
from dialback.db.schema import callback_events, callbacks, services
from dialback.routing.messages import Outcome
from dialback.routing.simulator import RoutingSimulator
from dialback.routing.transport import RedisTransport
from dialback.settings import Settings
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.stack import SettingsFactory, make_settings, wait_for

STREAM = "NewCallbackStream"
OUTCOMES = "CallbackOutcomeStream"
# Fast deadlines: republish 0.5 s apart at most twice, QUEUED ends after 3 s.
FAST = {
    "queued_republish_seconds": 0.5,
    "queued_max_republishes": 2,
    "queued_timeout_seconds": 3.0,
    "deadline_sweep_seconds": 0.1,
}


async def entries(url: str, stream: str = STREAM) -> list[dict[str, str]]:
    client = aioredis.from_url(url, decode_responses=True)
    try:
        return [f for _i, f in await client.xrange(stream)]
    finally:
        await client.aclose()


async def states(rt: Container) -> Counter[tuple[str, str | None]]:
    async with rt.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(callbacks.c.state, callbacks.c.reason, sa.func.count()).group_by(
                callbacks.c.state, callbacks.c.reason
            )
        )
        return Counter({(s, r): n for s, r, n in rows})


def metric(rt: Container, name: str, **labels: str) -> float | None:
    return value(parse(rt.metrics.registry.render()), name, **labels)


async def test_an_unacknowledged_queued_attempt_is_republished_boundedly_then_ends(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    # Two replicas sweep the same callbacks: each republish is published once all the same.
    settings = settings_with(simulator="off", **FAST)
    a, b = Container(settings), Container(settings.model_copy())
    tenant_id, service_id = await tenant_and_service(a.engine)
    ids = await insert_due_callbacks(a.engine, tenant_id, service_id, 20, max_attempts=1)
    await a.start()
    await b.start()
    try:

        async def all_timed_out_and_announced() -> bool:
            # The sweep announces each ended attempt after its commit: wait for both.
            if await states(a) != Counter({("COMPLETED", "timeout"): 20}):
                return False
            got = await entries(routing_redis_url)
            return {f["id"] for f in got if f["type"] == "cancel"} >= set(ids)

        # Nobody consumes: published, republished twice 0.5 s apart, ended after 3 s.
        await wait_for(all_timed_out_and_announced, timeout=15)
        got = await entries(routing_redis_url)
        dispatched = Counter(
            (f["id"], f["attempt"], f["republish"]) for f in got if f["type"] == "callback"
        )
        assert dispatched == Counter({(cid, "1", n): 1 for cid in ids for n in ("0", "1", "2")}), (
            "each (callback, attempt, republish) published exactly once"
        )

        # Every republish carries the whole entry of the attempt (published at its own time),
        # and the engine is told to drop the attempt that ended.
        def same(f: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in f.items() if k not in ("republish", "publishedAt")}

        first = {f["id"]: f for f in got if f["type"] == "callback" and f["republish"] == "0"}
        for f in got:
            if f["type"] == "callback":
                assert same(f) == same(first[f["id"]])
        cancels = Counter(f["id"] for f in got if f["type"] == "cancel")
        assert cancels == Counter({cid: 1 for cid in ids})

        def total(name: str, **labels: str) -> float:
            return sum(metric(rt, name, **labels) or 0 for rt in (a, b))

        assert total("ges_deadline_actions_total", state="queued", action="republished") == 40
        assert total("ges_deadline_actions_total", state="queued", action="completed") == 20
        assert total("ges_dispatch_outcomes_total", reason="timeout") == 20
        async with a.engine.connect() as conn:
            hist = (
                await conn.execute(
                    sa.select(callback_events.c.to_state, callback_events.c.reason)
                    .where(callback_events.c.callback_id == ids[0])
                    .order_by(callback_events.c.id)
                )
            ).all()
        assert [tuple(h) for h in hist] == [
            ("QUEUED", None),
            ("QUEUED", "republished"),
            ("QUEUED", "republished"),
            ("COMPLETED", "timeout"),
        ]
    finally:
        await a.stop()
        await b.stop()


async def test_a_queued_timeout_is_retried_as_a_new_attempt_when_the_policy_allows(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    settings = settings_with(simulator="off", **{**FAST, "queued_max_republishes": 0})
    rt = Container(settings)
    tenant_id, service_id = await tenant_and_service(rt.engine)
    async with rt.engine.begin() as conn:
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

        async def attempt_2_timed_out() -> bool:
            return await states(rt) == Counter({("COMPLETED", "timeout"): 1})

        await wait_for(attempt_2_timed_out, timeout=15)
        got = await entries(routing_redis_url)
        assert [(f["type"], f["attempt"]) for f in got] == [
            ("callback", "1"),
            ("cancel", "1"),
            ("callback", "2"),
            ("cancel", "2"),
        ]
        assert metric(rt, "ges_deadline_actions_total", state="queued", action="retried") == 1
        assert metric(rt, "ges_deadline_actions_total", state="queued", action="completed") == 1
        assert {f["id"] for f in got} == {cid}
    finally:
        await rt.stop()


async def test_routing_and_processing_past_their_deadline_complete_with_timeout(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    settings = settings_with(
        simulator="off",
        routing_timeout_seconds=1.0,
        processing_timeout_seconds=2.0,
        deadline_sweep_seconds=0.1,
    )
    rt = Container(settings)
    tenant_id, service_id = await tenant_and_service(rt.engine)
    ids = await insert_due_callbacks(rt.engine, tenant_id, service_id, 4)
    await rt.start()
    try:

        async def queued() -> bool:
            return await states(rt) == Counter({("QUEUED", None): 4})

        await wait_for(queued)
        now = time.time()
        for cid in ids[:2]:
            await rt.transport.emit_outcome(Outcome(cid, 1, "ROUTING", None, now))
        for cid in ids[2:]:
            await rt.transport.emit_outcome(Outcome(cid, 1, "PROCESSING", None, now))

        async def moved_on() -> bool:
            return await states(rt) == Counter({("ROUTING", None): 2, ("PROCESSING", None): 2})

        await wait_for(moved_on)
        started = time.monotonic()

        async def routing_ended() -> bool:
            return (await states(rt))[("COMPLETED", "timeout")] == 2

        await wait_for(routing_ended, timeout=5)
        assert (await states(rt))[("PROCESSING", None)] == 2, "PROCESSING has a longer deadline"

        async def all_ended() -> bool:
            return await states(rt) == Counter({("COMPLETED", "timeout"): 4})

        await wait_for(all_ended, timeout=5)
        assert time.monotonic() - started >= 1.0
        # Never retried (the engine had them); the ROUTING ones are withdrawn from it.
        got = await entries(routing_redis_url)
        assert Counter(f["id"] for f in got if f["type"] == "cancel") == Counter(
            {ids[0]: 1, ids[1]: 1}
        )
        assert metric(rt, "ges_deadline_actions_total", state="routing", action="completed") == 2
        assert metric(rt, "ges_deadline_actions_total", state="processing", action="completed") == 2
        assert metric(rt, "ges_deadline_actions_total", state="routing", action="retried") == 0
    finally:
        await rt.stop()


@pytest.fixture
def own_routing_redis() -> Iterator[RedisServer]:
    """A routing Redis of the test's own, to stop and restart empty."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.discard()


def sim_on(url: str, settings: Settings, **kw: Any) -> RoutingSimulator:
    """The bundled routing engine on its own connection to the routing Redis."""
    transport = RedisTransport(
        kw.pop("client", None) or redis_client(url),
        dispatch_stream=settings.routing_stream,
        outcome_stream=settings.outcome_stream,
        outcome_group=settings.outcome_group,
        routing_group=settings.routing_group,
        dedup_ttl=60,
    )
    return RoutingSimulator(
        transport,
        ring_seconds=0.01,
        answer_probability=1.0,
        consumer=kw.pop("consumer", "sim-test"),
        **{"agents": 10, "handle_seconds": 0.02, **kw},
    )


async def test_a_routing_redis_restarted_empty_loses_no_callback(
    pg_url: str, redis_url: str, own_routing_redis: RedisServer
) -> None:
    settings = make_settings(
        database_url=pg_url,
        redis_url=redis_url,
        routing_redis_url=own_routing_redis.url,
        simulator="off",
        queued_republish_seconds=1.0,
        deadline_sweep_seconds=0.2,
    )
    rt = Container(settings)
    tenant_id, service_id = await tenant_and_service(rt.engine)
    ids = await insert_due_callbacks(rt.engine, tenant_id, service_id, 60)
    await rt.start()
    sim = sim_on(own_routing_redis.url, settings)
    try:

        async def all_queued() -> bool:
            return await states(rt) == Counter({("QUEUED", None): 60})

        await wait_for(all_queued)
        # The routing Redis restarts with no data before the routing engine read anything:
        # the 60 entries, the consumer groups and the streams are gone.
        own_routing_redis.stop()
        own_routing_redis.start()
        assert await entries(own_routing_redis.url) == []
        sim.start()

        async def all_answered() -> bool:
            return await states(rt) == Counter({("COMPLETED", "answered"): 60})

        await wait_for(all_answered, timeout=30)
        assert sim.handled == 60, "the routing engine saw every callback, each once"
        assert metric(rt, "ges_routing_stream_losses_total") == 1
        republishes = metric(rt, "ges_deadline_actions_total", state="queued", action="republished")
        assert republishes is not None and republishes >= 60
        republished = {
            f["id"] for f in await entries(own_routing_redis.url) if f.get("republish") == "1"
        }
        assert republished == set(ids)

        # Flushed again while the routing engine runs: it re-creates its group and keeps
        # consuming, dialback provisions again and counts it, new callbacks complete.
        losses = metric(rt, "ges_routing_stream_losses_total") or 0
        client = aioredis.from_url(own_routing_redis.url)
        await client.flushall()
        await client.aclose()

        async def lost_again() -> bool:
            return (metric(rt, "ges_routing_stream_losses_total") or 0) > losses

        await wait_for(lost_again, timeout=5)
        assert metric(rt, "ges_routing_stream_losses_total") == losses + 1
        more = await insert_due_callbacks(rt.engine, tenant_id, service_id, 20)

        async def all_80_answered() -> bool:
            return await states(rt) == Counter({("COMPLETED", "answered"): 80})

        await wait_for(all_80_answered, timeout=30)
        assert sim.handled == 80
        assert len(more) == 20
    finally:
        await sim.stop()
        await sim.transport.close()
        await rt.stop()


@pytest.mark.slow
async def test_the_simulator_keeps_reporting_an_outcome_through_a_routing_outage(
    own_routing_redis: RedisServer,
) -> None:
    settings = make_settings(routing_redis_url=own_routing_redis.url)
    # No client-side retries: what is measured is the simulator's own persistence.
    client = aioredis.from_url(
        own_routing_redis.url,
        decode_responses=True,
        socket_connect_timeout=1,
        socket_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )
    sim = sim_on(own_routing_redis.url, settings, client=client, agents=1, handle_seconds=0.5)
    await sim.transport.ensure_groups()
    sim.start()
    try:
        fields = {"type": "callback", "id": "cb-1", "attempt": "1", "priority": "0"}
        await client.xadd(STREAM, fields)

        async def processing() -> bool:
            got = await entries(own_routing_redis.url, OUTCOMES)
            return any(f["event"] == "PROCESSING" for f in got)

        await wait_for(processing, timeout=5)
        # The routing Redis is down for 12 s while the agent finishes the call, and comes back
        # empty: the outcome is still reported.
        own_routing_redis.stop()
        await asyncio.sleep(12)
        own_routing_redis.start()

        async def completed() -> list[dict[str, str]]:
            got = await entries(own_routing_redis.url, OUTCOMES)
            return [f for f in got if f["event"] == "COMPLETED"]

        [done] = await wait_for(completed, timeout=15)
        assert (done["id"], done["attempt"], done["reason"]) == ("cb-1", "1", "answered")

        # A republish of the finished attempt is answered with its outcome, not a second call.
        await client.xadd(STREAM, {**fields, "republish": "1"})

        async def reported_again() -> bool:
            return len(await completed()) == 2

        await wait_for(reported_again, timeout=10)
        assert sim.handled == 1
    finally:
        await sim.stop()
        await client.aclose()


async def test_all_urs_down_stays_0_across_a_routing_redis_restart_with_a_live_consumer(
    pg_url: str, redis_url: str, own_routing_redis: RedisServer
) -> None:
    settings = make_settings(
        database_url=pg_url,
        redis_url=redis_url,
        routing_redis_url=own_routing_redis.url,
        simulator="on",
        routing_engine_idle_seconds=3.0,
        health_check_min_seconds=3600,
        health_check_max_seconds=3600,
        health_check_timeout_seconds=2.0,
    )
    rt = Container(settings)
    await rt.start()
    try:

        def gauge(name: str) -> float | None:
            return metric(rt, name)

        async def urs_up() -> bool:
            await rt.health.check_all()
            return gauge("ALL_URS_DOWN") == 0

        await wait_for(urs_up, timeout=10, interval=0.5)
        assert gauge("ORS_REDIS_STATUS") == 0
        # Down: the routing Redis is reported down, the routing engine is not.
        own_routing_redis.stop()
        await rt.health.check_all()
        assert gauge("ORS_REDIS_STATUS") == 1
        assert gauge("ALL_URS_DOWN") == 0
        # Back, empty (no consumer group, no heartbeats yet), checked at once and on.
        own_routing_redis.start()
        for _ in range(8):
            await rt.health.check_all()
            assert gauge("ALL_URS_DOWN") == 0
            await asyncio.sleep(0.5)
        assert gauge("ORS_REDIS_STATUS") == 0
        # A routing engine that really stops is still noticed once the window has passed.
        assert rt.simulator is not None
        await rt.simulator.stop()

        async def urs_down() -> bool:
            await rt.health.check_all()
            return gauge("ALL_URS_DOWN") == 1

        await wait_for(urs_down, timeout=10, interval=0.5)
    finally:
        await rt.stop()


async def test_concurrent_sweeps_publish_each_republish_once(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    settings = settings_with(simulator="off", monitor_enabled=False, **FAST)
    rt = Container(settings)
    tenant_id, service_id = await tenant_and_service(rt.engine)
    await rt.start()
    try:
        from dialback.callbacks import repository as repo
        from dialback.monitor.deadlines import DeadlineSweeper
        from dialback.monitor.monitor import dispatch_fields

        ids = await insert_due_callbacks(rt.engine, tenant_id, service_id, 300)
        now = time.time()
        async with rt.engine.begin() as conn:
            claimed = (await repo.claim_due(conn, "m", now, 30, 1000)).rows
            await repo.mark_queued(conn, "m", claimed, now - 1)
        sweepers = [
            DeadlineSweeper(
                rt.engine, rt.transport, rt.lifecycle, rt.events, settings, dispatch_fields
            )
            for _ in range(3)
        ]
        done = await asyncio.gather(*(s.sweep_once() for s in sweepers for _ in range(3)))
        assert sum(done) == 300, "every overdue row acted on once"
        got = await entries(routing_redis_url)
        assert Counter((f["id"], f["republish"]) for f in got) == Counter(
            {(cid, "1"): 1 for cid in ids}
        )
    finally:
        await rt.stop()


async def test_the_embedded_store_republishes_and_ends_routed_attempts_too(tmp_path: Path) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/dialback.db",
        data_dir=str(tmp_path),
        simulator="off",
        routing_timeout_seconds=1.0,
        **{**FAST, "queued_republish_seconds": 0.9},
    )
    rt = Container(settings)
    await rt.start()
    try:
        tenant_id, service_id = await tenant_and_service(rt.engine)
        ids = await insert_due_callbacks(rt.engine, tenant_id, service_id, 6, max_attempts=1)

        async def queued() -> bool:
            return (await states(rt))[("QUEUED", None)] == 6

        await wait_for(queued)
        now = time.time()
        for cid in ids[:3]:
            await rt.transport.emit_outcome(Outcome(cid, 1, "ROUTING", None, now))

        async def all_timed_out() -> bool:
            return await states(rt) == Counter({("COMPLETED", "timeout"): 6})

        await wait_for(all_timed_out, timeout=15)
        # What the in-process routing engine would have read: 3 attempts republished twice.
        got = await rt.transport.read_dispatches("reader", 100, 100)
        republished = Counter(f["id"] for _i, f in got if f.get("republish") in ("1", "2"))
        assert republished == Counter({cid: 2 for cid in ids[3:]})
        assert metric(rt, "ges_deadline_actions_total", state="routing", action="completed") == 3
        assert metric(rt, "ges_deadline_actions_total", state="queued", action="completed") == 3
    finally:
        await rt.stop()


@pytest.mark.parametrize(
    "lose",
    [
        ("XGROUP", "DESTROY", STREAM, "routing-engine"),
        ("XGROUP", "DESTROY", OUTCOMES, "dialback"),
        ("DEL", OUTCOMES),
    ],
    ids=["routing group", "outcome group", "outcome stream"],
)
async def test_a_lost_stream_or_group_is_noticed_provisioned_again_and_counted(
    settings_with: SettingsFactory, routing_redis_url: str, lose: tuple[str, ...]
) -> None:
    rt = Container(settings_with(simulator="off", deadline_sweep_seconds=0.1))
    await rt.start()
    client = aioredis.from_url(routing_redis_url, decode_responses=True)
    try:
        assert await rt.transport.intact()
        await asyncio.sleep(0.3)
        assert metric(rt, "ges_routing_stream_losses_total") == 0
        await client.execute_command(*lose)

        async def repaired() -> bool:
            return metric(rt, "ges_routing_stream_losses_total") == 1

        await wait_for(repaired, timeout=5)
        assert await rt.transport.intact()
        groups = {g["name"] for g in await client.xinfo_groups(STREAM)}
        assert groups == {"routing-engine"}
        assert {g["name"] for g in await client.xinfo_groups(OUTCOMES)} == {"dialback"}
    finally:
        await client.aclose()
        await rt.stop()

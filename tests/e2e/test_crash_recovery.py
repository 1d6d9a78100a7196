"""SIGKILL under load: no acknowledged callback is lost, and a restarted monitor reclaims leases."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.db.engine import create_engine
from dialback.db.schema import callbacks
from dialback.tenants import repository as tenants_repo
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.process import DialbackProcess


async def _load(url: str, key: str, seconds: float, acked: list[str], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:

        async def worker(n: int) -> None:
            i = 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not stop.is_set():
                i += 1
                body = {
                    "serviceName": "sales",
                    "phoneNumber": f"+1415555{(n * 1000 + i) % 10000:04d}",
                }
                try:
                    r = await client.post(
                        "/engagement/v3/callbacks/create", json=body, headers={"x-api-key": key}
                    )
                except httpx.HTTPError:
                    return  # the server died mid-request: that request was never acknowledged
                if r.status_code == 200:
                    acked.append(r.json()["data"]["id"])

        await asyncio.gather(*(worker(n) for n in range(8)))


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(pg_url)
    yield eng
    await eng.dispose()


async def test_sigkill_under_load_loses_nothing_and_leases_are_reclaimed(
    tmp_path: Path, pg_url: str, redis_url: str, routing_redis_url: str, engine: AsyncEngine
) -> None:
    tenant_id, service_id = await tenant_and_service(engine)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE tenants SET settings = CAST(:s AS JSONB) WHERE id = :id"),
            {"s": '{"throttle": {"maxCallbacks": 1000000, "windowSeconds": 60}}', "id": tenant_id},
        )
        from dialback.db.schema import services

        await conn.execute(
            services.update()
            .where(services.c.id == service_id)
            .values(
                config={
                    "businessHours": {"alwaysOpen": True},
                    "throttle": {"maxOpenPerNumber": 1000, "maxPerNumberPerDay": 10000},
                }
            )
        )
        key = tenants_repo.generate_key()
        await tenants_repo.create_api_key(conn, tenant_id, "load", key)
    # A backlog that keeps the monitor claiming (holding leases) while it is killed.
    backlog = await insert_due_callbacks(engine, tenant_id, service_id, 20_000)

    env = {
        "DIALBACK_DATABASE_URL": pg_url,
        "DIALBACK_REDIS_URL": redis_url,
        "DIALBACK_ROUTING_REDIS_URL": routing_redis_url,
        "DIALBACK_SIMULATOR": "off",
        "DIALBACK_MONITOR_LEASE_SECONDS": "3",
        "DIALBACK_MONITOR_BATCH_SIZE": "2000",
        "DIALBACK_LOG_LEVEL": "warn",
    }
    first = DialbackProcess(env, tmp_path / "first.log").start()
    acked: list[str] = []
    stop = asyncio.Event()
    load = asyncio.create_task(_load(first.public_url, key, 20, acked, stop))
    try:
        # Kill once enough bookings were acknowledged (bounded wait), while the backlog is
        # being dispatched.
        deadline = time.monotonic() + 15
        while len(acked) < 100 and time.monotonic() < deadline and not load.done():
            await asyncio.sleep(0.05)
        first.kill()  # SIGKILL: no graceful shutdown, leases left behind
        stop.set()
        await load
    finally:
        first.kill()
    assert len(acked) > 50, f"too little load reached the server ({len(acked)})"

    async with engine.connect() as conn:
        present = set(
            (
                await conn.execute(sa.select(callbacks.c.id).where(callbacks.c.id.in_(acked)))
            ).scalars()
        )
        leased = (
            await conn.execute(
                sa.select(sa.func.count()).where(
                    callbacks.c.state == "SCHEDULED", callbacks.c.lease_owner.is_not(None)
                )
            )
        ).scalar()
    assert present == set(acked), f"{len(set(acked) - present)} acknowledged callbacks lost"

    second = DialbackProcess(env, tmp_path / "second.log").start()
    try:
        # Requests the kill interrupted after their commit exist too (committed, never
        # acknowledged); every row in the store must be dispatched, acknowledged ones included.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                counts = dict(
                    (
                        await conn.execute(
                            sa.select(callbacks.c.state, sa.func.count()).group_by(
                                callbacks.c.state
                            )
                        )
                    ).all()
                )
            if set(counts) == {"QUEUED"}:
                break
            await asyncio.sleep(0.5)
        assert set(counts) == {"QUEUED"}, counts
        async with engine.connect() as conn:
            all_ids = set((await conn.execute(sa.select(callbacks.c.id))).scalars())
    finally:
        second.stop()
    assert set(acked) | set(backlog) <= all_ids

    r = redis.Redis.from_url(routing_redis_url, decode_responses=True)
    entries = r.xrange("NewCallbackStream")
    r.close()
    published = Counter((f["id"], f["attempt"]) for _i, f in entries if f.get("type") == "callback")
    assert {cid for cid, _ in published} == all_ids
    assert max(published.values()) == 1, "a callback attempt was published twice"
    print(f"acked={len(acked)} committed={len(all_ids) - len(backlog)} leased-at-kill={leased}")

"""Retention on real PostgreSQL and on the embedded SQLite store: old completed callbacks
(with their history) and expired call-in requests go in bounded batches, per tenant; open
callbacks and recent rows never do; a dead retention loop fails liveness."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dialback.db.schema import audit_log, callback_events, callbacks, callin_requests
from dialback.retention import repository as retention_repo
from dialback.retention.sweeper import RetentionSweeper
from dialback.settings import Settings
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.stack import SettingsFactory, Stack, make_settings, started_stack, wait_for

A = "/admin/v1"
DAY = 86400.0


@pytest.fixture(params=["postgresql", "sqlite"])
def engine_settings(
    request: pytest.FixtureRequest, tmp_path: Path, settings_with: SettingsFactory
) -> Settings:
    quiet = {"retention_enabled": False, "monitor_enabled": False, "retention_batch_size": 3}
    if request.param == "sqlite":
        return make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite", **quiet)
    return settings_with(simulator="off", **quiet)


@pytest.fixture
async def store(engine_settings: Settings) -> AsyncIterator[Stack]:
    async with started_stack(engine_settings) as s:
        yield s


async def add_events(stack: Stack, ids: list[str], at: float) -> None:
    async with stack.rt.engine.begin() as conn:
        for cid in ids:
            for to in ("QUEUED", "COMPLETED"):
                await conn.execute(
                    callback_events.insert().values(
                        callback_id=cid, at=at, to_state=to, attempt=1, source="monitor"
                    )
                )


async def completed(
    stack: Stack, tenant_id: str, service_id: str, n: int, days_ago: float, **kw: Any
) -> list[str]:
    at = time.time() - days_ago * DAY
    ids = await insert_due_callbacks(
        stack.rt.engine,
        tenant_id,
        service_id,
        n,
        due_at=at,
        state="COMPLETED",
        reason="answered",
        created_at=at - 60,
        updated_at=at,
        completed_at=at,
        **kw,
    )
    await add_events(stack, ids, at)
    return ids


async def callins(stack: Stack, tenant_id: str, n: int, days_ago: float, ttl: float) -> list[str]:
    at = time.time() - days_ago * DAY
    ids = [str(uuid.uuid4()) for _ in range(n)]
    async with stack.rt.engine.begin() as conn:
        for rid in ids:
            await conn.execute(
                callin_requests.insert().values(
                    id=rid,
                    tenant_id=tenant_id,
                    group_id="g",
                    group_name="g",
                    to_phone_number="+14155550000",
                    from_phone_number="+14155550123",
                    user_data={},
                    created_at=at,
                    expires_at=at + ttl,
                )
            )
    return ids


async def remaining(stack: Stack, table: sa.Table, ids: list[str], col: str = "id") -> set[str]:
    async with stack.rt.engine.connect() as conn:
        q = sa.select(table.c[col]).where(table.c[col].in_(ids))
        return set((await conn.execute(q)).scalars())


def purged(stack: Stack, kind: str) -> float:
    return stack.rt.metrics.ges_retention_purged_total.value((kind,))


async def test_old_completed_callbacks_and_callins_go_open_and_recent_ones_stay(
    store: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store
    tid, sid = await tenant_and_service(s.rt.engine, "acme")
    old = await completed(s, tid, sid, 7, days_ago=31)
    recent = await completed(s, tid, sid, 2, days_ago=29)
    ancient = time.time() - 400 * DAY
    # Open callbacks booked long ago (due in the future, or stuck QUEUED): never purged.
    open_ids = await insert_due_callbacks(
        s.rt.engine, tid, sid, 2, due_at=time.time() + DAY, created_at=ancient
    )
    open_ids += await insert_due_callbacks(
        s.rt.engine, tid, sid, 1, state="QUEUED", created_at=ancient, queued_at=ancient
    )
    await add_events(s, open_ids, ancient)
    old_ci = await callins(s, tid, 4, days_ago=31, ttl=300)
    recent_ci = await callins(s, tid, 1, days_ago=29, ttl=300)
    unexpired_ci = await callins(s, tid, 1, days_ago=31, ttl=40 * DAY)  # still matchable

    batches: list[int] = []
    real = retention_repo.purge_completed_callbacks

    async def counting(*args: Any) -> tuple[int, int]:
        out = await real(*args)
        batches.append(out[0])
        return out

    monkeypatch.setattr(retention_repo, "purge_completed_callbacks", counting)
    report = await s.rt.retention.sweep()

    assert report.counts["callbacks"] == 7
    assert report.counts["callback_events"] == 14
    assert report.counts["callin_requests"] == 4
    # Batches of at most DIALBACK_RETENTION_BATCH_SIZE (3) rows: 3 + 3 + 1.
    assert batches == [3, 3, 1]
    assert await remaining(s, callbacks, old) == set()
    assert await remaining(s, callback_events, old, "callback_id") == set()
    assert await remaining(s, callbacks, recent + open_ids) == set(recent + open_ids)
    assert len(await remaining(s, callback_events, open_ids, "callback_id")) == 3
    assert await remaining(s, callin_requests, old_ci) == set()
    assert await remaining(s, callin_requests, recent_ci + unexpired_ci) == set(
        recent_ci + unexpired_ci
    )
    assert purged(s, "callbacks") == 7
    assert purged(s, "callback_events") == 14
    assert purged(s, "callin_requests") == 4
    assert s.rt.metrics.ges_retention_last_sweep_timestamp_seconds.value() > 0

    # A second sweep finds nothing more.
    again = await s.rt.retention.sweep()
    assert again.counts.get("callbacks", 0) == 0 and purged(s, "callbacks") == 7


async def test_each_tenant_has_its_own_retention(store: Stack) -> None:
    s = store
    keep_long, sid_long = await tenant_and_service(s.rt.engine, "keeper")
    short, sid_short = await tenant_and_service(s.rt.engine, "brief")
    default, sid_default = await tenant_and_service(s.rt.engine, "plain")
    r = await s.internal.patch(
        f"{A}/tenants/keeper", json={"settings": {"retention": {"callbackDays": 3650}}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["settings"]["retention"] == {"callbackDays": 3650}
    r = await s.internal.patch(
        f"{A}/tenants/brief", json={"settings": {"retention": {"callbackDays": 1, "callInDays": 1}}}
    )
    assert r.status_code == 200, r.text
    for bad in (0, 3651, "x"):
        r = await s.internal.patch(
            f"{A}/tenants/brief", json={"settings": {"retention": {"callbackDays": bad}}}
        )
        assert r.status_code == 400, r.text
        assert "settings.retention.callbackDays" in r.json()["status"]["message"]

    kept = await completed(s, keep_long, sid_long, 2, days_ago=100)
    gone = await completed(s, short, sid_short, 2, days_ago=2)
    gone_ci = await callins(s, short, 1, days_ago=2, ttl=60)
    plain_recent = await completed(s, default, sid_default, 1, days_ago=2)
    plain_old = await completed(s, default, sid_default, 1, days_ago=45)

    await s.rt.retention.sweep()
    assert await remaining(s, callbacks, kept) == set(kept)
    assert await remaining(s, callbacks, gone) == set()
    assert await remaining(s, callin_requests, gone_ci) == set()
    assert await remaining(s, callbacks, plain_recent + plain_old) == set(plain_recent)


async def test_the_global_default_is_a_setting(engine_settings: Settings) -> None:
    settings = engine_settings.model_copy(update={"retention_callback_days": 60})
    async with started_stack(settings) as s:
        tid, sid = await tenant_and_service(s.rt.engine, "acme")
        kept = await completed(s, tid, sid, 1, days_ago=45)
        gone = await completed(s, tid, sid, 1, days_ago=61)
        await s.rt.retention.sweep()
        assert await remaining(s, callbacks, kept + gone) == set(kept)


def test_retention_days_are_bounded() -> None:
    for bad in (0, 3651):
        with pytest.raises(ValueError, match="retention_callback_days"):
            Settings(retention_callback_days=bad)


async def test_a_dead_retention_loop_fails_liveness(store: Stack) -> None:
    s = store
    before = s.rt.metrics.UNCAUGHT_EXCEPTION.value()
    assert (await s.internal.get("/health/live")).status_code == 200

    # A sweep that fails is counted, and the loop keeps going.
    sweeper = RetentionSweeper(s.rt.retention, s.rt.events, interval=0.01, first_delay=0)
    calls = 0

    async def broken_sweep(stopping: Any = None) -> Any:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug in a sweep")

    s.rt.retention.sweep = broken_sweep  # type: ignore[method-assign]
    s.rt.retention_sweeper = sweeper
    sweeper.start()
    await wait_for(lambda: asyncio.sleep(0, calls >= 3))
    assert sweeper.healthy
    assert s.rt.metrics.UNCAUGHT_EXCEPTION.value() >= before + 3
    assert (await s.internal.get("/health/live")).status_code == 200

    # The loop itself dying (a bug outside a sweep) is noticed: counted, and liveness fails.
    async def dying() -> None:
        raise RuntimeError("bug in the loop")

    counted = s.rt.metrics.UNCAUGHT_EXCEPTION.value()
    sweeper.sweep_once = dying  # type: ignore[method-assign]
    await wait_for(lambda: asyncio.sleep(0, not sweeper.healthy))
    assert sweeper.failed == "retention-sweeper"
    assert s.rt.metrics.UNCAUGHT_EXCEPTION.value() == counted + 1
    r = await s.internal.get("/health/live")
    assert r.status_code == 503
    assert r.json()["retentionFailed"] == "retention-sweeper"
    await sweeper.stop()


async def test_the_container_runs_the_sweeper(tmp_path: Path) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
        retention_interval_seconds=0.05,
    )
    async with started_stack(settings) as s:
        sweeper = s.rt.retention_sweeper
        assert sweeper is not None
        tid, sid = await tenant_and_service(s.rt.engine, "acme")
        old = await completed(s, tid, sid, 2, days_ago=40)
        await wait_for(lambda: _gone(s, old))
    assert s.rt.retention_sweeper is not None and s.rt.retention_sweeper._task is None


async def _gone(s: Stack, ids: list[str]) -> bool:
    return await remaining(s, callbacks, ids) == set()


async def test_old_audit_entries_go_recent_ones_stay(store: Stack) -> None:
    s = store
    who = "token:ops"
    for n in range(7):  # more than one batch of 3
        await s.rt.audit.record(who, "admin.cancel_callback", object_id=f"old-{n}")
    await s.rt.audit.record(who, "admin.cancel_callback", object_id="recent")
    cutoff = time.time() - s.rt.settings.retention_audit_days * 86400
    async with s.rt.engine.begin() as conn:
        await conn.execute(
            audit_log.update().where(audit_log.c.object_id.like("old-%")).values(at=cutoff - 60)
        )
    report = await s.rt.retention.sweep()
    assert report.counts["audit_entries"] == 7
    async with s.rt.engine.connect() as conn:
        left = (await conn.execute(sa.select(audit_log.c.object_id))).scalars().all()
    assert left == ["recent"]
    assert s.rt.metrics.ges_retention_purged_total.value(("audit_entries",)) == 7

"""An outcome that overtakes the monitor's SCHEDULED -> QUEUED step, interleaved by hand on the
SQLite store (no row locks): the transition is decided on the row it writes, recorded once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.callbacks import lifecycle
from dialback.callbacks import repository as repo
from dialback.db.engine import create_engine
from dialback.db.migrations import migrate
from dialback.db.schema import callback_events
from tests.support.factories import insert_due_callbacks, tenant_and_service

OWNER = "replica-a"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path}/race.db")
    await migrate(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


async def history(engine: AsyncEngine, cid: str) -> list[tuple[str | None, str]]:
    async with engine.connect() as conn:
        return [(e.from_state, e.to_state) for e in await repo.callback_history(conn, cid)]


async def claimed_callback(engine: AsyncEngine) -> list[repo.Claimed]:
    tenant_id, service_id = await tenant_and_service(engine)
    await insert_due_callbacks(engine, tenant_id, service_id, 1)
    async with engine.begin() as conn:
        return (await repo.claim_due(conn, OWNER, time.time(), 30.0, 10)).rows


async def test_mark_queued_waits_for_an_outcome_that_read_the_row_first(
    engine: AsyncEngine,
) -> None:
    claimed = await claimed_callback(engine)
    cid = claimed[0].id

    async def mark() -> int:
        async with engine.begin() as conn:
            return await repo.mark_queued(conn, OWNER, claimed, time.time())

    async with engine.begin() as conn:
        # The outcome loop reads the row (still SCHEDULED) ...
        row = await repo.find_callback(conn, cid, lock=True)
        assert row is not None and row.state == "SCHEDULED"
        # ... the monitor marks the batch QUEUED meanwhile ...
        marking = asyncio.create_task(mark())
        done, _ = await asyncio.wait({marking}, timeout=0.5)
        assert not done, "mark_queued committed under a transition decided on the row it changes"
        # ... and the outcome's transition, decided on what it read, is written.
        t = lifecycle.outcome(row, "ROUTING", None, 1, time.time(), None)
        assert t is not None
        await repo.apply(conn, row, t)
    assert await marking == 0  # the row had moved on: nothing left to mark
    assert await history(engine, cid) == [("SCHEDULED", "QUEUED"), ("QUEUED", "ROUTING")]


async def test_an_outcome_after_mark_queued_records_queued_once(engine: AsyncEngine) -> None:
    claimed = await claimed_callback(engine)
    cid = claimed[0].id
    async with engine.begin() as conn:
        assert await repo.mark_queued(conn, OWNER, claimed, time.time()) == 1
    async with engine.begin() as conn:
        row = await repo.find_callback(conn, cid, lock=True)
        t = lifecycle.outcome(row, "ROUTING", None, 1, time.time(), None)
        assert t is not None
        await repo.apply(conn, row, t)
    assert await history(engine, cid) == [("SCHEDULED", "QUEUED"), ("QUEUED", "ROUTING")]
    async with engine.connect() as conn:
        n = (await conn.execute(sa.select(sa.func.count()).select_from(callback_events))).scalar()
    assert n == 2

"""Marking callbacks QUEUED and applying outcomes take row locks in one order (no deadlock);
a deadlock that still happens is run again, not reported as a bug. Real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from testbed.metrics_parse import parse, value

from dialback.callbacks import repository as callbacks_repo
from dialback.container import Container
from dialback.db.schema import callbacks
from dialback.routing.messages import Outcome
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.stack import SettingsFactory

OWNER = "lock-order-test"


class Records(logging.Handler):
    """The monitor's log records of one test."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


@pytest.fixture
def monitor_log() -> Iterator[Records]:
    logger = logging.getLogger("dialback.monitor")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
async def rt(settings_with: SettingsFactory, pg_url: str) -> AsyncIterator[Container]:
    """A container (not started) whose database detects a deadlock after 100 ms, not 1 s."""
    c = Container(settings_with(simulator="off"))
    name = sa.make_url(pg_url).database
    async with c.engine.connect() as conn:
        await conn.execute(sa.text(f"ALTER DATABASE {name} SET deadlock_timeout = '100ms'"))
    await c.engine.dispose()  # new connections pick the setting up
    try:
        yield c
    finally:
        await c.stop()


async def deadlocks(rt: Container) -> int:
    """Deadlocks PostgreSQL detected in this database so far."""
    async with rt.engine.connect() as conn:
        await conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        n = (
            await conn.execute(
                sa.text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            )
        ).scalar()
    return int(n or 0)


def routing(cid: str) -> tuple[str, dict[str, str]]:
    """An outcome entry: the routing engine took attempt 1 of ``cid``."""
    o = Outcome(cid, 1, "ROUTING", None, time.time())
    return "0-0", o.to_fields()


async def test_mark_queued_and_apply_outcomes_never_deadlock_over_the_same_callbacks(
    rt: Container, monitor_log: Records
) -> None:
    mon = rt.monitor
    assert mon is not None
    tenant_id, service_id = await tenant_and_service(rt.engine)
    before = await deadlocks(rt)
    failures: list[BaseException] = []
    for _round in range(6):
        await insert_due_callbacks(rt.engine, tenant_id, service_id, 60)
        async with rt.engine.begin() as conn:
            claim = await callbacks_repo.claim_due(conn, OWNER, time.time(), 60, 60)
        ids = sorted(r.id for r in claim.rows)
        assert len(ids) == 60
        # Outcomes for the upper 40 in descending order (the order they arrived in), while
        # all 60 are marked QUEUED in one statement: each holds rows the other wants next.
        entries = [routing(cid) for cid in reversed(ids[20:])]
        marked = claim.rows

        async def mark(marked: list[callbacks_repo.Claimed]) -> None:
            await asyncio.sleep(0.01)  # let the outcomes lock their first rows
            async with rt.engine.begin() as conn:
                await callbacks_repo.mark_queued(conn, OWNER, marked, time.time())

        results = await asyncio.gather(
            mon.apply_outcomes(entries), mark(marked), return_exceptions=True
        )
        failures += [r for r in results if isinstance(r, BaseException)]
        async with rt.engine.connect() as conn:
            states = dict(
                (
                    await conn.execute(
                        sa.select(callbacks.c.id, callbacks.c.state).where(callbacks.c.id.in_(ids))
                    )
                ).all()
            )
        assert all(states[cid] == "ROUTING" for cid in ids[20:]), states
        assert all(states[cid] == "QUEUED" for cid in ids[:20]), states
    assert failures == []
    # pg_stat_database is flushed by each backend within about a second.
    await asyncio.sleep(1.2)
    assert await deadlocks(rt) == before
    assert "transaction conflict" not in monitor_log.text


async def lock_waiters(rt: Container, n: int, timeout: float = 10.0) -> None:
    """Wait until ``n`` sessions of this database wait for a lock."""
    deadline = time.monotonic() + timeout
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    while time.monotonic() < deadline:
        async with rt.engine.connect() as conn:
            if (await conn.execute(query)).scalar_one() >= n:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {n} sessions waited for a lock within {timeout} s")


async def test_a_deadlock_that_happens_anyway_is_run_again_not_an_uncaught_exception(
    rt: Container, monitor_log: Records
) -> None:
    mon = rt.monitor
    assert mon is not None
    tenant_id, service_id = await tenant_and_service(rt.engine)
    x, y = sorted(await insert_due_callbacks(rt.engine, tenant_id, service_id, 2))
    async with rt.engine.begin() as conn:
        claim = await callbacks_repo.claim_due(conn, OWNER, time.time(), 60, 10)
    async with rt.engine.begin() as conn:
        await callbacks_repo.mark_queued(conn, OWNER, claim.rows, time.time())

    # Another writer (not dialback's order) holds y and then wants x, while the outcomes
    # hold x and want y: PostgreSQL aborts one of the two, here the outcomes (first waiter).
    async with rt.engine.connect() as other:
        await other.execute(sa.select(callbacks.c.id).where(callbacks.c.id == y).with_for_update())
        applying = asyncio.create_task(mon.apply_outcomes([routing(x), routing(y)]))
        await lock_waiters(rt, 1)  # the outcomes hold x and wait for y (not a guess of how long)
        await other.execute(sa.select(callbacks.c.id).where(callbacks.c.id == x).with_for_update())
        await other.commit()
    await asyncio.wait_for(applying, timeout=10)

    async with rt.engine.connect() as conn:
        got = dict(
            (
                await conn.execute(
                    sa.select(callbacks.c.id, callbacks.c.state).where(callbacks.c.id.in_([x, y]))
                )
            ).all()
        )
    assert got == {x: "ROUTING", y: "ROUTING"}
    assert "transaction conflict (DBAPIError); running it again" in monitor_log.text
    assert not [r for r in monitor_log.records if r.levelno >= logging.ERROR]
    assert value(parse(rt.metrics.registry.render()), "UNCAUGHT_EXCEPTION") == 0

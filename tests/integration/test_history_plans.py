"""The hot queries' plans on a bulk-loaded store (200 k callbacks, 90 days of history, skewed
over 50 tenants x 10 services, ANALYZEd): no sequential scan on callbacks or their events, and
each through the index meant for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from testbed.servers import PostgresServer

from bench import bulkload, history
from tests.support.stack import TEMPLATE_DB

ROWS = 200_000


@pytest.fixture(scope="module")
def loaded_url(pg_server: PostgresServer) -> Iterator[str]:
    """One migrated database bulk-loaded once for the module."""
    name = "t_history_plans"
    pg_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg_server.psql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    url = pg_server.url(name)
    report = bulkload.load(url, 50, 10, callbacks=ROWS, scheduled=ROWS // 10)
    assert report.callbacks == ROWS and report.events == 2 * ROWS - ROWS // 10
    try:
        yield url
    finally:
        pg_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def conn(loaded_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(bulkload.asyncpg_dsn(loaded_url))
    try:
        yield c
    finally:
        await c.close()


@pytest.mark.parametrize("name", sorted(history.HOT_QUERIES))
async def test_hot_query_uses_its_index(conn: asyncpg.Connection, name: str) -> None:
    sample = await history.sample(conn)
    plan = await history.explain(conn, history.statement(name, sample))
    assert not history.seq_scans(plan) & set(history.HOT_TABLES), plan
    assert history.HOT_QUERIES[name][1] in history.indexes(plan), plan


async def test_the_loaded_store_looks_like_history(conn: asyncpg.Connection) -> None:
    states = dict(await conn.fetch("SELECT state, count(*) FROM callbacks GROUP BY state"))
    assert states == {"COMPLETED": ROWS - ROWS // 10, "SCHEDULED": ROWS // 10}
    span = await conn.fetchval("SELECT max(created_at) - min(created_at) FROM callbacks")
    assert span > 80 * 86400  # retention (30 days by default) has rows to purge
    tenants = await conn.fetchval("SELECT count(DISTINCT tenant_id) FROM callbacks")
    assert tenants == 50
    table, index = await bulkload.store_bytes(conn)
    assert table > 0 and index > 0

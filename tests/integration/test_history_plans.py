"""The hot queries' plans on a bulk-loaded store (200 k callbacks, 90 days of history, skewed
over 50 tenants x 10 services, ANALYZEd): no sequential scan on callbacks or their events, and
each through the index meant for it; the admin list's page and count as the repository runs
them read a page's worth of rows, however many match."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from testbed.servers import PostgresServer

from bench import bulkload, history
from dialback.callbacks import repository as repo
from dialback.callbacks.service import STATES
from tests.support.stack import TEMPLATE_DB

# Loads 200 k rows once for the module: started first, so that the suite does not end waiting on it.
pytestmark = pytest.mark.slow

ROWS = 200_000
SLOT_ROWS = 30_000


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


class _Statements:
    """Stands in for a connection: keeps what the repository would run, answers nothing."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    async def execute(self, q: sa.Executable) -> Any:
        self.sql.append(str(q.compile(dialect=postgresql.dialect(), compile_kwargs=_LITERAL)))
        return self

    def scalar(self) -> int:
        return 0

    def all(self) -> list[Any]:
        return []

    def one(self) -> tuple[int, ...]:
        return (0,) * len(STATES)


_LITERAL = {"literal_binds": True}


@pytest.fixture
async def slot_booked(conn: asyncpg.Connection) -> AsyncIterator[history.Sample]:
    """What the bench's creates leave: SLOT_ROWS of the biggest tenant's callbacks booked into
        one slot (one due time) a day ahead, ANALYZEd; all in a transaction rolled back after (and
    vacuumed away)."""
    s = await history.sample(conn)
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute(
            "INSERT INTO callbacks SELECT (jsonb_populate_record(c, jsonb_build_object("
            "'id', gen_random_uuid()::text, 'due_at', $1::float8))).*"
            " FROM callbacks c, generate_series(1, $2) WHERE c.id = $3",
            s.now + 86400,
            SLOT_ROWS,
            s.callback_id,
        )
        await conn.execute("ANALYZE callbacks")
        yield s
    finally:
        await tr.rollback()
        # The rolled-back rows' index entries would slow the next test's scans.
        await conn.execute("VACUUM callbacks")


def _node_types(plan: dict[str, Any]) -> list[str]:
    return [n["Node Type"] for n in history._nodes(plan)]


async def test_the_admin_list_reads_one_page_of_a_big_slot(
    conn: asyncpg.Connection, slot_booked: history.Sample
) -> None:
    """The page comes in (due, id) order from the index, no sort: with (tenant, state, due)
    alone the rows of one due time had to be read and sorted by id, all SLOT_ROWS of them."""
    s = slot_booked
    match = repo.CallbackFilter(
        tenant_id=s.tenant_id, state="SCHEDULED", due_from=s.now, due_to=s.now + 14 * 86400
    )
    for sort in ("dueTime", "-dueTime"):
        run = _Statements()
        await repo.search_callbacks(run, match, limit=250, offset=0, sort=sort)  # type: ignore[arg-type]
        count_sql, page_sql = run.sql
        page = await history.explain(conn, page_sql, analyze=True)
        assert "ix_callbacks_tenant_state_due_id" in history.indexes(page), page
        assert not {"Sort", "Incremental Sort"} & set(_node_types(page)), page
        assert page["Plan"]["Actual Rows"] == 250
        assert history.summary(page)["shared_hit"] + history.summary(page)["shared_read"] < 2_000
        # The count stops past the cap: at most COUNT_CAP + 1 index entries, none of the heap.
        count = await history.explain(conn, count_sql, analyze=True)
        limit = next(n for n in history._nodes(count) if n["Node Type"] == "Limit")
        assert limit["Actual Rows"] == repo.COUNT_CAP + 1, count
        assert "ix_callbacks_tenant_state_due_id" in history.indexes(count), count


async def test_the_lists_counts_by_state_stop_at_the_cap(
    conn: asyncpg.Connection, slot_booked: history.Sample
) -> None:
    """The UI's counts per state for a tenant: a capped range of the index per state, not a
    grouped count over the tenant's whole history (about 75,000 rows here)."""
    run = _Statements()
    tenant = repo.CallbackFilter(tenant_id=slot_booked.tenant_id)
    await repo.count_matching_by_state(run, tenant, STATES)  # type: ignore[arg-type]
    (sql,) = run.sql
    plan = await history.explain(conn, sql, analyze=True)
    assert not history.seq_scans(plan) & set(history.HOT_TABLES), plan
    assert "ix_callbacks_tenant_state_due_id" in history.indexes(plan), plan
    read = history.summary(plan)["shared_hit"] + history.summary(plan)["shared_read"]
    # At most a visibility check per counted entry of the fresh slot (a grouped count: 30,000).
    assert read < 2 * (repo.COUNT_CAP + 1), history.summary(plan)
    limits = [n["Actual Rows"] for n in history._nodes(plan) if n["Node Type"] == "Limit"]
    assert len(limits) == len(STATES) and max(limits) == repo.COUNT_CAP + 1, plan
    counted = dict(zip(STATES, (await conn.fetchrow(sql)).values(), strict=True))
    assert counted["SCHEDULED"] == counted["COMPLETED"] == repo.COUNT_CAP + 1
    assert counted["QUEUED"] == counted["ROUTING"] == counted["PROCESSING"] == 0

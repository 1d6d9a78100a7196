"""The export's keyset batch is an index range on PostgreSQL: a batch deep in a tenant's history
reads about one batch of rows, not every row before it (which made an export's time grow with
the square of its size)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from dialback.callbacks import repository as repo
from dialback.callbacks.repository import CallbackFilter
from dialback.db.engine import create_engine

ROWS = 20_000
BATCH = 500


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += _nodes(child)
    return out


async def test_a_late_export_batch_reads_one_batch_of_index_entries(pg_url: str) -> None:
    engine = create_engine(pg_url)
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM callbacks" in statement:
            seen.append((statement, params))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with engine.connect() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO callbacks (id, tenant_id, service_id, service_name, phone_number,"
                    " state, offer_type, due_at, priority, language, user_data, params, attempt,"
                    " max_attempts, created_at, updated_at)"
                    " SELECT 'x' || g, 'tenant-1', 's', 'sales', '+1415' || lpad(g::text, 7, '0'),"
                    " 'COMPLETED', 'SCHEDULED', g, 0, 'en', '{}', '{}', 1, 1, g, g"
                    " FROM generate_series(1, :n) g"
                ),
                {"n": ROWS},
            )
            await conn.execute(sa.text("ANALYZE callbacks"))
            late = (float(ROWS - 4 * BATCH), f"x{ROWS - 4 * BATCH}")
            rows = await repo.export_batch(conn, CallbackFilter(), "tenant-1", late, BATCH)
            assert len(rows) == BATCH and rows[0].id == f"x{ROWS - 4 * BATCH + 1}"
            statement, params = seen[-1]
            raw = (await conn.get_raw_connection()).driver_connection
            explained = await raw.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *params)
            await conn.rollback()
    finally:
        await engine.dispose()
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    scans = [n for n in _nodes(plan) if n["Node Type"].startswith(("Index", "Bitmap Index"))]
    assert scans, plan
    read = sum(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) for n in scans)
    # At most the rows after the keyset (the planner may take them all in a bitmap scan); far
    # fewer than the tenant's ROWS that a scan from its first row reads.
    assert read <= 4 * BATCH + 1, json.dumps(plan, indent=1)

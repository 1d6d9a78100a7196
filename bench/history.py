"""History at scale: the hot queries' plans on a bulk-loaded store.

``HOT_QUERIES`` holds the statements of the hot paths as PostgreSQL runs them (the booking
function's open-number count, retrieve, the claim, the deadline sweep, the admin list, export,
retention); ``plans`` EXPLAINs each with a sample of the loaded store's own values, and
``seq_scans`` / ``indexes`` read what a plan touches. The plan test and docs/performance.md
use these.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.bulkload import asyncpg_dsn

_OPEN = "('SCHEDULED', 'QUEUED', 'ROUTING', 'PROCESSING')"


@dataclass(frozen=True)
class Sample:
    """Values of the loaded store the hot queries are run with."""

    tenant_id: str
    service_id: str
    callback_id: str
    phone_number: str
    now: float


# name -> (statement with {placeholders} from Sample, the index it must use)
HOT_QUERIES: dict[str, tuple[str, str]] = {
    "booking_open_number_count": (
        "SELECT count(*) FROM callbacks WHERE phone_number = '{phone_number}'"
        f" AND tenant_id = '{{tenant_id}}' AND state IN {_OPEN}",
        "ix_callbacks_open_number",
    ),
    "retrieve": (
        "SELECT * FROM callbacks WHERE id = '{callback_id}' AND tenant_id = '{tenant_id}'",
        "callbacks_pkey",
    ),
    "lookup_by_id": ("SELECT * FROM callbacks WHERE id = '{callback_id}'", "callbacks_pkey"),
    "history": (
        "SELECT * FROM callback_events WHERE callback_id = '{callback_id}' ORDER BY at, id",
        "ix_callback_events_callback_id",
    ),
    "open_for_service": (
        f"SELECT count(*) FROM callbacks WHERE service_id = '{{service_id}}' AND state IN {_OPEN}",
        "ix_callbacks_queue",
    ),
    "monitor_claim": (
        "SELECT id FROM callbacks WHERE state = 'SCHEDULED' AND due_at <= {now}"
        " AND (lease_expires_at IS NULL OR lease_expires_at < {now})"
        " AND NOT EXISTS (SELECT 1 FROM parked_callbacks p WHERE p.callback_id = callbacks.id)"
        " ORDER BY due_at LIMIT 500 FOR UPDATE SKIP LOCKED",
        "ix_callbacks_due",
    ),
    "deadline_scan": (
        "SELECT id FROM callbacks WHERE state IN ('QUEUED', 'ROUTING', 'PROCESSING') AND ("
        " (state = 'QUEUED' AND lease_expires_at IS NOT NULL AND lease_expires_at <= {now})"
        " OR (state = 'QUEUED' AND lease_expires_at IS NULL AND updated_at <= {now} - 60)"
        " OR (state = 'ROUTING' AND lease_expires_at IS NULL AND updated_at <= {now} - 60)"
        " OR (state = 'PROCESSING' AND lease_expires_at IS NULL AND updated_at <= {now} - 600))"
        " ORDER BY updated_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        "ix_callbacks_routed_deadline",
    ),
    "admin_list_scheduled_by_due": (
        "SELECT id, state, due_at, EXISTS (SELECT 1 FROM parked_callbacks p"
        " WHERE p.callback_id = callbacks.id) FROM callbacks WHERE tenant_id = '{tenant_id}'"
        " AND state = 'SCHEDULED' AND due_at >= {now} AND due_at < {now} + 14 * 86400"
        " ORDER BY due_at, id LIMIT 250",
        "ix_callbacks_tenant_state_due",
    ),
    "admin_list_scheduled_count": (
        "SELECT count(*) FROM callbacks WHERE tenant_id = '{tenant_id}' AND state = 'SCHEDULED'"
        " AND due_at >= {now} AND due_at < {now} + 14 * 86400",
        "ix_callbacks_tenant_state_due",
    ),
    "admin_list_completed_by_due": (
        "SELECT id, state, due_at FROM callbacks WHERE tenant_id = '{tenant_id}'"
        " AND state = 'COMPLETED' AND due_at >= {now} - 7 * 86400 AND due_at < {now}"
        " ORDER BY due_at, id LIMIT 250",
        "ix_callbacks_tenant_state_due",
    ),
    "admin_list_newest": (
        "SELECT id, state FROM callbacks WHERE tenant_id = '{tenant_id}'"
        " ORDER BY created_at DESC, id LIMIT 250",
        "ix_callbacks_tenant_created",
    ),
    "export_batch": (
        "SELECT id, state FROM callbacks WHERE tenant_id = '{tenant_id}'"
        " AND created_at >= {now} - 7 * 86400 ORDER BY created_at, id LIMIT 1000",
        "ix_callbacks_tenant_created",
    ),
    "retention_purge_pick": (
        "SELECT id FROM callbacks WHERE tenant_id = '{tenant_id}' AND state = 'COMPLETED'"
        " AND completed_at < {now} - 30 * 86400 ORDER BY completed_at"
        " LIMIT 500 FOR UPDATE SKIP LOCKED",
        "ix_callbacks_tenant_completed",
    ),
    "completed_stats": (
        "SELECT count(*) FROM callbacks WHERE service_id = '{service_id}'"
        " AND state = 'COMPLETED' AND completed_at >= {now} - 3600",
        "ix_callbacks_completed",
    ),
}
HOT_TABLES = ("callbacks", "callback_events")


async def sample(conn: asyncpg.Connection) -> Sample:
    """The biggest tenant's values: its busiest service, one of its scheduled callbacks."""
    row = await conn.fetchrow(
        "SELECT tenant_id, service_id, count(*) AS n FROM callbacks"
        " WHERE state = 'SCHEDULED' GROUP BY 1, 2 ORDER BY n DESC LIMIT 1"
    )
    assert row is not None, "no scheduled callbacks loaded"
    cb = await conn.fetchrow(
        "SELECT id, phone_number FROM callbacks WHERE tenant_id = $1 AND state = 'SCHEDULED'"
        " LIMIT 1",
        row[0],
    )
    assert cb is not None
    return Sample(row[0], row[1], cb[0], cb[1], time.time())


def statement(name: str, s: Sample) -> str:
    """The hot query ``name`` with the sample's values."""
    return HOT_QUERIES[name][0].format(**s.__dict__)


async def explain(conn: asyncpg.Connection, sql: str, analyze: bool = False) -> dict[str, Any]:
    """The JSON plan of ``sql`` (run, in a rolled-back transaction, when ``analyze``)."""
    opts = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    tr = conn.transaction()
    await tr.start()
    try:
        text = await conn.fetchval(f"EXPLAIN ({opts}) {sql}")
    finally:
        await tr.rollback()
    doc = json.loads(text) if isinstance(text, str) else text
    return dict(doc[0])


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    node = plan.get("Plan", plan)
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def seq_scans(plan: dict[str, Any]) -> set[str]:
    """Relations the plan reads by sequential scan."""
    return {n["Relation Name"] for n in _nodes(plan) if n["Node Type"] == "Seq Scan"}


def indexes(plan: dict[str, Any]) -> set[str]:
    """Indexes the plan reads."""
    return {n["Index Name"] for n in _nodes(plan) if "Index Name" in n}


def summary(plan: dict[str, Any]) -> dict[str, Any]:
    """Time, buffers and the nodes of an analyzed plan, compact for a report."""
    top = plan["Plan"]
    return {
        "ms": round(float(plan.get("Execution Time", 0.0)), 3),
        "shared_hit": int(top.get("Shared Hit Blocks", 0)),
        "shared_read": int(top.get("Shared Read Blocks", 0)),
        "nodes": [
            n["Node Type"] + (f" {n['Index Name']}" if "Index Name" in n else "")
            for n in _nodes(plan)
        ],
    }


async def profile(url: str) -> dict[str, Any]:
    """Every hot query EXPLAINed (ANALYZE, BUFFERS) on the store at ``url``."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        s = await sample(conn)
        return {
            name: summary(await explain(conn, statement(name, s), analyze=True))
            for name in HOT_QUERIES
        }
    finally:
        await conn.close()

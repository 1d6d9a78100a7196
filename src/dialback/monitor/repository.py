"""The monitor's queries: lease-based claiming, marking dispatched, applying outcomes.

Claiming and marking are the dispatch hot path: on PostgreSQL each is one statement sent as
raw SQL on the pooled asyncpg connection (no SQLAlchemy compilation or result processing),
each its own transaction unless the caller already opened one on the connection. Other
dialects (the embedded SQLite store) take the SQLAlchemy Core path.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.db.schema import OPEN_STATES, callback_events, callbacks
from dialback.kit.errors import as_dbapi_error

CB = callbacks.c


class Claimed(NamedTuple):
    """A callback leased for dispatch: what its stream entry needs."""

    id: str
    tenant_id: str
    service_name: str
    phone_number: str
    attempt: int
    priority: int
    language: str
    desired_time: float | None
    due_at: float
    user_data: str  # compact JSON text


_CLAIM_COLUMNS = (
    CB.id,
    CB.tenant_id,
    CB.service_name,
    CB.phone_number,
    CB.attempt,
    CB.priority,
    CB.language,
    CB.desired_time,
    CB.due_at,
    CB.user_data,
)

# The due rows are locked by the inner SELECT (other replicas skip them) and updated through
# the primary key: ``= ANY(ARRAY(...))`` keeps the plan an index lookup however big the table.
_PG_CLAIM = """
UPDATE callbacks SET lease_owner = $1, lease_expires_at = $2
WHERE id = ANY(ARRAY(
    SELECT id FROM callbacks
    WHERE state = 'SCHEDULED' AND due_at <= $3
      AND (lease_expires_at IS NULL OR lease_expires_at < $3)
    ORDER BY due_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
))
RETURNING id, tenant_id, service_name, phone_number, attempt, priority, language,
    desired_time, due_at, user_data::text
"""

# The state change and its event rows in one statement (one round trip, atomic); only rows
# still leased to us and still SCHEDULED move (an outcome may already have moved one on).
_PG_MARK_QUEUED = """
WITH moved AS (
    UPDATE callbacks SET state = 'QUEUED', queued_at = $2, updated_at = $2,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ANY($1::varchar[]) AND lease_owner = $3 AND state = 'SCHEDULED'
    RETURNING id, attempt
), events AS (
    INSERT INTO callback_events (callback_id, at, from_state, to_state, reason, attempt, source)
    SELECT id, $2, 'SCHEDULED', 'QUEUED', NULL, attempt, 'monitor' FROM moved
)
SELECT count(*) FROM moved
"""


async def _pg(conn: AsyncConnection, method: str, sql: str, *args: Any) -> Any:
    """Run ``sql`` on the asyncpg connection under ``conn`` (in its transaction, if begun)."""
    driver: Any = (await conn.get_raw_connection()).driver_connection
    try:
        return await getattr(driver, method)(sql, *args)
    except Exception as exc:
        # SQLAlchemy did not see this statement fail: a connection that died must not go back
        # to the pool as if it were healthy, and the error must read as the outage it is.
        if driver.is_closed():
            await conn.invalidate()
        err = as_dbapi_error(exc, sql)
        if err is exc:
            raise
        raise err from exc
    except BaseException:
        if driver.is_closed():
            await conn.invalidate()
        raise


def _compact(text: str) -> str:
    return orjson.dumps(orjson.loads(text)).decode()


def _due(c: Claimed) -> float:
    return c.due_at


async def claim_due(
    conn: AsyncConnection, owner: str, now: float, lease: float, limit: int
) -> list[Claimed]:
    """Lease up to ``limit`` due callbacks to ``owner``, oldest due first; others skip them."""
    if conn.dialect.name == "postgresql":
        rows = await _pg(conn, "fetch", _PG_CLAIM, owner, now + lease, now, limit)
        claimed = [
            Claimed(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], _compact(r[9]))
            for r in rows
        ]
        claimed.sort(key=_due)
        return claimed
    due = (
        sa.select(CB.id)
        .where(
            CB.state == "SCHEDULED",
            CB.due_at <= now,
            sa.or_(CB.lease_expires_at.is_(None), CB.lease_expires_at < now),
        )
        .order_by(CB.due_at)
        .limit(limit)
    )
    stmt = (
        callbacks.update()
        .where(CB.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .returning(*_CLAIM_COLUMNS)
    )
    claimed = [
        Claimed(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], orjson.dumps(r[9] or {}).decode()
        )
        for r in await conn.execute(stmt)
    ]
    claimed.sort(key=_due)
    return claimed


async def release_leases(conn: AsyncConnection, owner: str, ids: list[str]) -> None:
    """Give leases back so the next cycle (of any replica) retries at once."""
    await conn.execute(
        callbacks.update()
        .where(CB.id.in_(ids), CB.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


async def mark_queued(conn: AsyncConnection, owner: str, claimed: list[Any], now: float) -> int:
    """Move published callbacks SCHEDULED -> QUEUED; rows whose lease was lost are left alone."""
    ids = [r.id for r in claimed]
    if conn.dialect.name == "postgresql":
        return int(await _pg(conn, "fetchval", _PG_MARK_QUEUED, ids, now, owner))
    res = await conn.execute(
        callbacks.update()
        .where(CB.id.in_(ids), CB.lease_owner == owner, CB.state == "SCHEDULED")
        .values(
            state="QUEUED", queued_at=now, updated_at=now, lease_owner=None, lease_expires_at=None
        )
        .returning(CB.id)
    )
    # Only rows actually moved get the event: an outcome may already have moved a row on.
    moved = {cid for (cid,) in res.all()}
    events = [
        {
            "callback_id": r.id,
            "at": now,
            "from_state": "SCHEDULED",
            "to_state": "QUEUED",
            "reason": None,
            "attempt": r.attempt,
            "source": "monitor",
        }
        for r in claimed
        if r.id in moved
    ]
    if events:
        await conn.execute(callback_events.insert(), events)
    return len(moved)


async def load_for_outcome(conn: AsyncConnection, callback_id: str) -> Any | None:
    """The callback an outcome refers to, row-locked on PostgreSQL."""
    q = sa.select(callbacks).where(CB.id == callback_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return (await conn.execute(q)).first()


async def update_callback(conn: AsyncConnection, callback_id: str, values: dict[str, Any]) -> None:
    """Apply column changes to one callback."""
    await conn.execute(callbacks.update().where(CB.id == callback_id).values(**values))


async def no_parallel_scans(conn: AsyncConnection) -> None:
    """Keep this transaction's scans to one core: statistics must not starve the dispatch."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")


async def count_by_state(conn: AsyncConnection) -> dict[str, int]:
    """Open callbacks per state (for the monitor-size gauge)."""
    # IN, not != 'COMPLETED': the (state, due_at) index then skips the completed history.
    q = sa.select(CB.state, sa.func.count()).where(CB.state.in_(OPEN_STATES)).group_by(CB.state)
    return {s: int(n) for s, n in (await conn.execute(q)).all()}


async def due_backlog(conn: AsyncConnection, now: float) -> tuple[int, float | None]:
    """How many callbacks are due but not dispatched, and the oldest due time."""
    q = sa.select(sa.func.count(), sa.func.min(CB.due_at)).where(
        CB.state == "SCHEDULED", CB.due_at <= now
    )
    n, oldest = (await conn.execute(q)).one()
    return int(n or 0), (float(oldest) if oldest is not None else None)

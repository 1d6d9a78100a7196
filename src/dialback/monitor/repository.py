"""The monitor's queries: lease-based claiming, marking dispatched, applying outcomes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.db.schema import callback_events, callbacks

CB = callbacks.c

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
    CB.params,
)


async def claim_due(
    conn: AsyncConnection, owner: str, now: float, lease: float, limit: int
) -> list[Any]:
    """Lease up to ``limit`` due callbacks to ``owner``; other replicas skip locked rows."""
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
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        callbacks.update()
        .where(CB.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .returning(*_CLAIM_COLUMNS)
    )
    return list((await conn.execute(stmt)).all())


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


async def count_by_state(conn: AsyncConnection) -> dict[str, int]:
    """Open callbacks per state (for the monitor-size gauge)."""
    q = sa.select(CB.state, sa.func.count()).where(CB.state != "COMPLETED").group_by(CB.state)
    return {s: int(n) for s, n in (await conn.execute(q)).all()}


async def due_backlog(conn: AsyncConnection, now: float) -> tuple[int, float | None]:
    """How many callbacks are due but not dispatched, and the oldest due time."""
    q = sa.select(sa.func.count(), sa.func.min(CB.due_at)).where(
        CB.state == "SCHEDULED", CB.due_at <= now
    )
    n, oldest = (await conn.execute(q)).one()
    return int(n or 0), (float(oldest) if oldest is not None else None)

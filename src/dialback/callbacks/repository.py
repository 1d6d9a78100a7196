"""Persistence of callbacks and capacity usage (SQLAlchemy Core, PostgreSQL and SQLite)."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.db.schema import OPEN_STATES, callback_events, callbacks, capacity_usage

CB = callbacks.c


async def insert_callback(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert one callback row."""
    await conn.execute(callbacks.insert().values(**values))


async def get_callback(conn: AsyncConnection, tenant_id: str, callback_id: str) -> Any | None:
    """A tenant's callback by id; another tenant's id reads as missing."""
    q = sa.select(callbacks).where(CB.id == callback_id, CB.tenant_id == tenant_id)
    return (await conn.execute(q)).first()


def number_lock_key(tenant_id: str, phone: str) -> int:
    """The PostgreSQL advisory-lock key of one tenant's number (a signed 64-bit integer)."""
    digest = hashlib.blake2b(f"{tenant_id}:{phone}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_number(conn: AsyncConnection, tenant_id: str, phone: str) -> None:
    """Serialise bookings for one number until the transaction ends (before counting them).

    PostgreSQL: a transaction-scoped advisory lock on the number. SQLite: take the database
    write lock now (BEGIN IMMEDIATE), so the count and the insert cannot interleave; this must
    be the first statement of the transaction.
    """
    if conn.dialect.name == "postgresql":
        key = number_lock_key(tenant_id, phone)
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    elif conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def count_open_for_number(conn: AsyncConnection, tenant_id: str, phone: str) -> int:
    """How many callbacks for this number are not yet completed."""
    q = sa.select(sa.func.count()).where(
        CB.tenant_id == tenant_id, CB.phone_number == phone, CB.state.in_(OPEN_STATES)
    )
    return int((await conn.execute(q)).scalar() or 0)


def _upsert(conn: AsyncConnection):  # type: ignore[no-untyped-def]
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


async def reserve_capacity(conn: AsyncConnection, service_id: str, slot: float, total: int) -> bool:
    """Atomically take one place in a slot; False when the slot is full."""
    if total <= 0:
        return False
    ins = _upsert(conn)(capacity_usage).values(service_id=service_id, slot_start=slot, booked=1)
    stmt = ins.on_conflict_do_update(
        index_elements=[capacity_usage.c.service_id, capacity_usage.c.slot_start],
        set_={"booked": capacity_usage.c.booked + 1},
        where=capacity_usage.c.booked < total,
    ).returning(capacity_usage.c.booked)
    return (await conn.execute(stmt)).first() is not None


async def release_capacity(conn: AsyncConnection, service_id: str, slot: float) -> None:
    """Give a place in a slot back (cancel, reschedule)."""
    await conn.execute(
        capacity_usage.update()
        .where(
            capacity_usage.c.service_id == service_id,
            capacity_usage.c.slot_start == slot,
            capacity_usage.c.booked > 0,
        )
        .values(booked=capacity_usage.c.booked - 1)
    )


async def slot_usage(
    conn: AsyncConnection, service_id: str, start: float, end: float
) -> dict[float, int]:
    """Booked count per slot start in [start, end)."""
    q = sa.select(capacity_usage.c.slot_start, capacity_usage.c.booked).where(
        capacity_usage.c.service_id == service_id,
        capacity_usage.c.slot_start >= start,
        capacity_usage.c.slot_start < end,
    )
    return {float(s): int(b) for s, b in (await conn.execute(q)).all()}


async def lock_callback(conn: AsyncConnection, tenant_id: str, callback_id: str) -> Any | None:
    """A tenant's callback, row-locked for update on PostgreSQL."""
    q = sa.select(callbacks).where(CB.id == callback_id, CB.tenant_id == tenant_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return (await conn.execute(q)).first()


async def complete_cancelled(conn: AsyncConnection, row: Any, now: float, source: str) -> None:
    """Complete a cancellable callback with reason ``cancelled`` and free its slot."""
    await conn.execute(
        callbacks.update()
        .where(CB.id == row.id)
        .values(
            state="COMPLETED",
            reason="cancelled",
            completed_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    await add_event(conn, row.id, now, row.state, "COMPLETED", "cancelled", row.attempt, source)
    if row.slot_start is not None and row.state == "SCHEDULED":
        await release_capacity(conn, row.service_id, row.slot_start)


async def reschedule(
    conn: AsyncConnection, row: Any, due: float, slot: float | None, now: float
) -> None:
    """Move a scheduled callback to a new due time and slot."""
    await conn.execute(
        callbacks.update()
        .where(CB.id == row.id)
        .values(
            desired_time=due,
            due_at=due,
            slot_start=slot,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    await add_event(conn, row.id, now, row.state, "SCHEDULED", "rescheduled", row.attempt, "admin")


async def add_event(
    conn: AsyncConnection,
    callback_id: str,
    at: float,
    from_state: str | None,
    to_state: str,
    reason: str | None,
    attempt: int,
    source: str,
) -> None:
    """Append one state change to a callback's history."""
    await conn.execute(
        callback_events.insert().values(
            callback_id=callback_id,
            at=at,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            attempt=attempt,
            source=source,
        )
    )


async def position_in_queue(conn: AsyncConnection, row: Any) -> int:
    """1-based position among the service's queued callbacks (priority, then age)."""
    if row.queued_at is None:
        return 1
    q = sa.select(sa.func.count()).where(
        CB.service_id == row.service_id,
        CB.state == "QUEUED",
        sa.or_(
            CB.priority > row.priority,
            sa.and_(CB.priority == row.priority, CB.queued_at < row.queued_at),
        ),
    )
    return int((await conn.execute(q)).scalar() or 0) + 1


async def queued_count(conn: AsyncConnection, service_id: str) -> int:
    """Callbacks of the service waiting for an agent."""
    q = sa.select(sa.func.count()).where(CB.service_id == service_id, CB.state == "QUEUED")
    return int((await conn.execute(q)).scalar() or 0)


async def recent_completions(conn: AsyncConnection, service_id: str, limit: int = 32) -> list[Any]:
    """The service's last routed completions (queued_at, routed_at, completed_at), newest first."""
    q = (
        sa.select(CB.queued_at, CB.routed_at, CB.completed_at)
        .where(CB.service_id == service_id, CB.state == "COMPLETED", CB.routed_at.is_not(None))
        .order_by(CB.completed_at.desc())
        .limit(limit)
    )
    return list((await conn.execute(q)).all())


async def search_callbacks(
    conn: AsyncConnection,
    *,
    tenant_id: str | None,
    state: str | None,
    service_name: str | None,
    created_from: float | None,
    created_to: float | None,
    due_from: float | None,
    due_to: float | None,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    """A page of callbacks matching the filters, newest first, and the total count."""
    conds = []
    if tenant_id:
        conds.append(CB.tenant_id == tenant_id)
    if state:
        conds.append(CB.state == state)
    if service_name:
        conds.append(CB.service_name == service_name)
    if created_from is not None:
        conds.append(CB.created_at >= created_from)
    if created_to is not None:
        conds.append(CB.created_at < created_to)
    if due_from is not None:
        conds.append(CB.due_at >= due_from)
    if due_to is not None:
        conds.append(CB.due_at < due_to)
    where = sa.and_(sa.true(), *conds)
    count = sa.select(sa.func.count()).select_from(callbacks).where(where)
    total = int((await conn.execute(count)).scalar() or 0)
    q = (
        sa.select(callbacks)
        .where(where)
        .order_by(CB.created_at.desc(), CB.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await conn.execute(q)).all()), total


async def callback_history(conn: AsyncConnection, callback_id: str) -> list[Any]:
    """A callback's state changes, oldest first."""
    q = (
        sa.select(callback_events)
        .where(callback_events.c.callback_id == callback_id)
        .order_by(callback_events.c.id)
    )
    return list((await conn.execute(q)).all())


async def find_callback(
    conn: AsyncConnection, callback_id: str, *, lock: bool = False
) -> Any | None:
    """A callback by id whatever its tenant (admin API); row-locked on PostgreSQL when ``lock``."""
    q = sa.select(callbacks).where(CB.id == callback_id)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return (await conn.execute(q)).first()


async def count_open_for_service(conn: AsyncConnection, service_id: str) -> int:
    """How many of the service's callbacks are not yet completed."""
    q = sa.select(sa.func.count()).where(CB.service_id == service_id, CB.state.in_(OPEN_STATES))
    return int((await conn.execute(q)).scalar() or 0)

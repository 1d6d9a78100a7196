"""The SQL of retention and erasure: batched purges, erasures by number, the erasure audit.

The one place that deletes callbacks, their history and call-in requests (the tables' other
queries stay in ``callbacks/repository.py`` and ``callins/repository.py``). Every statement is
bounded: a purge removes at most ``limit`` rows, and only rows that are finished.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.db.schema import (
    callback_events,
    callbacks,
    callin_requests,
    erasure_audit,
    idempotency_keys,
    parked_callbacks,
)

CB = callbacks.c
CI = callin_requests.c
AU = erasure_audit.c


async def write_lock(conn: AsyncConnection) -> None:
    """SQLite: take the database write lock now, so what is read stays as read until commit
    (PostgreSQL locks the rows it reads ``FOR UPDATE`` instead)."""
    if conn.dialect.name == "sqlite":
        raw = await conn.get_raw_connection()
        if not raw.driver_connection.in_transaction:  # type: ignore[union-attr]
            await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def purge_completed_callbacks(
    conn: AsyncConnection, tenant_id: str, cutoff: float, limit: int
) -> tuple[int, int]:
    """Delete up to ``limit`` of the tenant's callbacks completed before ``cutoff``, with their
    history; (callbacks, events) removed. Open callbacks are never touched."""
    # Oldest completed first through ix_callbacks_tenant_completed: without the order the
    # planner picks a sequential scan for a big tenant, which rereads the rows earlier batches
    # left dead.
    picked = (
        sa.select(CB.id)
        .where(CB.tenant_id == tenant_id, CB.state == "COMPLETED", CB.completed_at < cutoff)
        .order_by(CB.completed_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        picked = picked.with_for_update(skip_locked=True)
    ids = list((await conn.execute(picked)).scalars())
    if not ids:
        return 0, 0
    return await delete_callbacks(conn, ids, only_completed=True)


async def delete_callbacks(
    conn: AsyncConnection, ids: Sequence[str], *, only_completed: bool = False
) -> tuple[int, int]:
    """Delete these callbacks, their history, their parked records and the Idempotency-Keys
    that booked them (a retry with such a key books anew); (callbacks, events) removed."""
    if not ids:
        return 0, 0
    where: list[sa.ColumnElement[bool]] = [CB.id.in_(list(ids))]
    if only_completed:
        where.append(CB.state == "COMPLETED")
    gone = list((await conn.execute(callbacks.delete().where(*where).returning(CB.id))).scalars())
    if not gone:
        return 0, 0
    events = await conn.execute(
        callback_events.delete().where(callback_events.c.callback_id.in_(gone))
    )
    await conn.execute(parked_callbacks.delete().where(parked_callbacks.c.callback_id.in_(gone)))
    await conn.execute(idempotency_keys.delete().where(idempotency_keys.c.callback_id.in_(gone)))
    return len(gone), int(events.rowcount or 0)


async def purge_callin_requests(
    conn: AsyncConnection, tenant_id: str, cutoff: float, now: float, limit: int
) -> int:
    """Delete up to ``limit`` of the tenant's call-in requests created before ``cutoff`` and
    expired by ``now``; how many were removed."""
    picked = (
        sa.select(CI.id)
        .where(CI.tenant_id == tenant_id, CI.created_at < cutoff, CI.expires_at < now)
        .limit(limit)
        .scalar_subquery()
    )
    res = await conn.execute(callin_requests.delete().where(CI.id.in_(picked)))
    return int(res.rowcount or 0)


async def callbacks_for_numbers(
    conn: AsyncConnection, tenant_id: str, numbers: Sequence[str]
) -> list[Any]:
    """The tenant's callbacks for any of these numbers, locked until the transaction ends."""
    await write_lock(conn)
    q = (
        sa.select(callbacks)
        .where(CB.tenant_id == tenant_id, CB.phone_number.in_(list(numbers)))
        .order_by(CB.id)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return list((await conn.execute(q)).all())


async def delete_callins_for_numbers(
    conn: AsyncConnection, tenant_id: str, numbers: Sequence[str]
) -> int:
    """Delete the tenant's call-in requests made from any of these numbers."""
    res = await conn.execute(
        callin_requests.delete().where(
            CI.tenant_id == tenant_id, CI.from_phone_number.in_(list(numbers))
        )
    )
    return int(res.rowcount or 0)


async def insert_audit(conn: AsyncConnection, values: dict[str, Any]) -> str:
    """Record one erasure; its id."""
    aid = str(uuid.uuid4())
    await conn.execute(erasure_audit.insert().values(id=aid, **values))
    return aid


async def get_audit(conn: AsyncConnection, audit_id: str) -> Any | None:
    """One audit row by id."""
    return (await conn.execute(sa.select(erasure_audit).where(AU.id == audit_id))).first()


async def list_audit(
    conn: AsyncConnection, tenant_id: str | None, *, limit: int, offset: int
) -> tuple[list[Any], int]:
    """Audit rows (of one tenant, or all), newest first, paged; and their total."""
    where = [AU.tenant_id == tenant_id] if tenant_id is not None else []
    count = sa.select(sa.func.count()).select_from(erasure_audit).where(*where)
    total = (await conn.execute(count)).scalar() or 0
    rows = await conn.execute(
        sa.select(erasure_audit)
        .where(*where)
        .order_by(AU.at.desc(), AU.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all()), int(total)

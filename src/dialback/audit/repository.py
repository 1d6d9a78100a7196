"""Persistence of the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.db.schema import audit_log

A = audit_log.c


@dataclass(frozen=True)
class AuditFilter:
    """What a reader of the audit log narrows it by; None: any."""

    tenants: frozenset[str] | None = None  # a scoped reader's tenants
    tenant: str | None = None
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    callback_id: str | None = None
    outcome: str | None = None
    corr_id: str | None = None
    since: float | None = None
    until: float | None = None


async def insert_entry(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Append one entry."""
    await conn.execute(audit_log.insert().values(**values))


def _conditions(f: AuditFilter) -> list[Any]:
    conds: list[Any] = []
    if f.tenants is not None:
        names = sorted(f.tenants)
        conds.append(A.tenant.in_(names) if names else sa.false())
    for column, value in (
        (A.tenant, f.tenant),
        (A.actor, f.actor),
        (A.action, f.action),
        (A.object_type, f.object_type),
        (A.object_id, f.object_id),
        (A.callback_id, f.callback_id),
        (A.outcome, f.outcome),
        (A.corr_id, f.corr_id),
    ):
        if value is not None:
            conds.append(column == value)
    if f.since is not None:
        conds.append(A.at >= f.since)
    if f.until is not None:
        conds.append(A.at < f.until)
    return conds


async def search(
    conn: AsyncConnection, f: AuditFilter, *, limit: int, offset: int
) -> tuple[list[Any], int]:
    """A page of entries matching ``f``, newest first, and how many match."""
    conds = _conditions(f)
    rows = await conn.execute(
        sa.select(audit_log)
        .where(*conds)
        .order_by(A.at.desc(), A.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(*conds))
    ).scalar()
    return list(rows.all()), int(total or 0)


async def for_callback(conn: AsyncConnection, callback_id: str, limit: int = 200) -> list[Any]:
    """The entries about one callback, oldest first (its timeline)."""
    rows = await conn.execute(
        sa.select(audit_log).where(A.callback_id == callback_id).order_by(A.at, A.id).limit(limit)
    )
    return list(rows.all())


async def purge_before(conn: AsyncConnection, before: float, batch: int) -> int:
    """Delete up to ``batch`` entries older than ``before``; how many went."""
    ids = sa.select(A.id).where(A.at < before).order_by(A.at).limit(batch).scalar_subquery()
    result = await conn.execute(audit_log.delete().where(A.id.in_(ids)))
    return int(result.rowcount or 0)

"""The aggregate reads behind the statistics: callbacks per service by open state, and
completions by reason over a window. Read-only reporting over ``callbacks``, whose rows and
transitions stay ``callbacks.repository``'s."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.callbacks.lifecycle import OPEN_STATES
from dialback.db.schema import callbacks

CB = callbacks.c


async def open_counts(conn: AsyncConnection, service_ids: list[str]) -> dict[tuple[str, str], int]:
    """(service id, state) -> callbacks in that open state (through ``ix_callbacks_queue``)."""
    q = (
        sa.select(CB.service_id, CB.state, sa.func.count())
        .where(CB.service_id.in_(service_ids), CB.state.in_(OPEN_STATES))
        .group_by(CB.service_id, CB.state)
    )
    return {(sid, state): int(n) for sid, state, n in await conn.execute(q)}


async def completed_counts(
    conn: AsyncConnection, service_ids: list[str], since: float
) -> dict[tuple[str, str | None], int]:
    """(service id, reason) -> callbacks completed at or after ``since`` (through
    ``ix_callbacks_completed``)."""
    q = (
        sa.select(CB.service_id, CB.reason, sa.func.count())
        .where(
            CB.service_id.in_(service_ids),
            CB.state == "COMPLETED",
            CB.completed_at >= since,
        )
        .group_by(CB.service_id, CB.reason)
    )
    return {(sid, reason): int(n) for sid, reason, n in await conn.execute(q)}

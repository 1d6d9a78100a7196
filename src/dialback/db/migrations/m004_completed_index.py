"""Migration 4 (frozen): ``ix_callbacks_completed``, completions per service by time."""

from __future__ import annotations

import sqlalchemy as sa

# Only the columns the index names: this step's own copy, never db/schema.py's table.
_callbacks = sa.Table(
    "callbacks",
    sa.MetaData(),
    sa.Column("service_id", sa.String(36), nullable=False),
    sa.Column("completed_at", sa.Float),
    sa.Column("reason", sa.String(32)),
    sa.Column("state", sa.String(16), nullable=False),
)
_ix_completed = sa.Index(
    "ix_callbacks_completed",
    _callbacks.c.service_id,
    _callbacks.c.completed_at,
    _callbacks.c.reason,
    postgresql_where=_callbacks.c.state == "COMPLETED",
    sqlite_where=_callbacks.c.state == "COMPLETED",
)


def apply(conn: sa.Connection) -> None:
    """Create the index of completed callbacks by service and completion time."""
    # Databases created by a step 1 that was the current schema's create_all may have it.
    _ix_completed.create(conn, checkfirst=True)

"""Migration 6 (frozen): ``ix_callbacks_routed_deadline``, the deadline sweep's index."""

from __future__ import annotations

import sqlalchemy as sa

# Only the columns the index names: this step's own copy, never db/schema.py's table.
_callbacks = sa.Table(
    "callbacks",
    sa.MetaData(),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
)
_ROUTED_STATES = ("QUEUED", "ROUTING", "PROCESSING")
_ix_routed_deadline = sa.Index(
    "ix_callbacks_routed_deadline",
    _callbacks.c.state,
    _callbacks.c.lease_expires_at,
    _callbacks.c.updated_at,
    postgresql_where=_callbacks.c.state.in_(_ROUTED_STATES),
    sqlite_where=_callbacks.c.state.in_(_ROUTED_STATES),
)


def apply(conn: sa.Connection) -> None:
    """Create the index of routed callbacks by held deadline and state entry time."""
    _ix_routed_deadline.create(conn, checkfirst=True)

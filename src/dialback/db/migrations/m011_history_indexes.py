"""Migration 11 (frozen): indexes that keep the admin list and retention flat as history grows."""

from __future__ import annotations

import sqlalchemy as sa

# Only the columns the indexes name: this step's own copy, never db/schema.py's table.
_callbacks = sa.Table(
    "callbacks",
    sa.MetaData(),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("completed_at", sa.Float),
)
# The admin/UI list filtered by tenant and state, sorted by due time (and its count): one
# tenant's rows of one state in due order, instead of every tenant's through ix_callbacks_due.
_ix_tenant_state_due = sa.Index(
    "ix_callbacks_tenant_state_due",
    _callbacks.c.tenant_id,
    _callbacks.c.state,
    _callbacks.c.due_at,
)
# The retention purge: a tenant's completed rows by completion time, so a batch reads only
# rows it deletes (ix_callbacks_tenant_created also walks the tenant's open and recent rows;
# on a big tenant the planner chose a sequential scan).
_ix_tenant_completed = sa.Index(
    "ix_callbacks_tenant_completed",
    _callbacks.c.tenant_id,
    _callbacks.c.completed_at,
    postgresql_where=_callbacks.c.state == "COMPLETED",
    sqlite_where=_callbacks.c.state == "COMPLETED",
)


def apply(conn: sa.Connection) -> None:
    """Create the tenant/state/due index and the tenant's completed-by-time index."""
    # Inside the migration's one transaction, so not CONCURRENTLY: the build holds writes to
    # callbacks for its duration (measured in docs/performance.md, "History at scale").
    _ix_tenant_state_due.create(conn, checkfirst=True)
    _ix_tenant_completed.create(conn, checkfirst=True)

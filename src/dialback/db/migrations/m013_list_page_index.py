"""Migration 13 (frozen): the admin list's page in index order (id as the 4th key column)."""

from __future__ import annotations

import sqlalchemy as sa

# Only the columns the index names: this step's own copy, never db/schema.py's table.
_callbacks = sa.Table(
    "callbacks",
    sa.MetaData(),
    sa.Column("id", sa.String(36), nullable=False),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
)
# ORDER BY due_at, id LIMIT n of one tenant's rows of one state reads n index entries in order;
# with (tenant, state, due) alone PostgreSQL read every row of the due range and sorted them.
_ix_tenant_state_due_id = sa.Index(
    "ix_callbacks_tenant_state_due_id",
    _callbacks.c.tenant_id,
    _callbacks.c.state,
    _callbacks.c.due_at,
    _callbacks.c.id,
)


def apply(conn: sa.Connection) -> None:
    """Create the (tenant, state, due, id) index, then drop m011's (tenant, state, due) one."""
    # The new index serves every query the old one did (it is a prefix), and each index costs
    # every create a write. Not CONCURRENTLY: the migration is one transaction (see m011).
    _ix_tenant_state_due_id.create(conn, checkfirst=True)
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_callbacks_tenant_state_due"))

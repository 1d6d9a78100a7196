"""Migration 5 (frozen): ``parked_callbacks``, the rows the monitor set aside as unreadable."""

from __future__ import annotations

import sqlalchemy as sa

# This step's own copy, never db/schema.py's table.
_parked_callbacks = sa.Table(
    "parked_callbacks",
    sa.MetaData(),
    sa.Column("callback_id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("parked_at", sa.Float, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
)


def apply(conn: sa.Connection) -> None:
    """Create the table of parked callbacks."""
    _parked_callbacks.create(conn, checkfirst=True)

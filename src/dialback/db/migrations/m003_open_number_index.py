"""Migration 3 (frozen): ``ix_callbacks_open_number``, the booking count with a cached plan."""

from __future__ import annotations

import sqlalchemy as sa

from dialback.db.migrations.m002_book_callback import BOOK_CALLBACK

# Only the columns the index names: this step's own copy, never db/schema.py's table.
_callbacks = sa.Table(
    "callbacks",
    sa.MetaData(),
    sa.Column("phone_number", sa.String(32), nullable=False),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
)
_OPEN_STATES = ("SCHEDULED", "QUEUED", "ROUTING", "PROCESSING")
# The open-callbacks-per-number count of every booking: small (open rows only), and the only
# index that fits that count, so a cached generic plan uses it however the table grows.
_ix_open_number = sa.Index(
    "ix_callbacks_open_number",
    _callbacks.c.phone_number,
    _callbacks.c.tenant_id,
    postgresql_where=_callbacks.c.state.in_(_OPEN_STATES),
    sqlite_where=_callbacks.c.state.in_(_OPEN_STATES),
)

# Version 3 counts through ix_callbacks_open_number, the only index that fits the statement
# (its predicate is the statement's own), so the cached plan stays right as the table grows.
_COUNT_CACHED_PLAN = """
    SELECT count(*) INTO open_count FROM callbacks
     WHERE phone_number = p_phone_number AND tenant_id = p_tenant_id
       AND state IN ('SCHEDULED', 'QUEUED', 'ROUTING', 'PROCESSING');
"""


def apply(conn: sa.Connection) -> None:
    """Create the open-number index and count through it in the booking function."""
    # Databases created at version 3 or later by releases whose step 1 was the current
    # schema's create_all have the index already.
    _ix_open_number.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(BOOK_CALLBACK.replace("{count}", _COUNT_CACHED_PLAN))

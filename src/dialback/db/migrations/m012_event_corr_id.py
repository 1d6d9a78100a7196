"""Migration 12 (frozen): ``callback_events.corr_id``, the corrId of the request or monitor step
that made each state change, and a booking function that records the creation with it."""

from __future__ import annotations

import sqlalchemy as sa

from dialback.db.migrations.m008_idempotency_keys import BOOK_CALLBACK_WITH_KEY

# Only the columns the index names: this step's own copy, never db/schema.py's table.
_events = sa.Table(
    "callback_events",
    sa.MetaData(),
    sa.Column("corr_id", sa.String(64)),
)
# The Developer page's lookup by corrId. Partial: rows written before this step (and any
# without a corrId) cost the index nothing.
_ix_corr_id = sa.Index(
    "ix_callback_events_corr_id",
    _events.c.corr_id,
    postgresql_where=_events.c.corr_id.is_not(None),
    sqlite_where=_events.c.corr_id.is_not(None),
)

# Version 8's function with the creation written to the history, with its corrId and source
# (p_corr_id NULL: none). The 23-argument version of migration 8 stays for replicas of the
# previous release during a rolling upgrade (they book without the creation row, which the
# timeline then shows from created_at); migration 3's 20-argument one, two releases old, goes.
_HISTORY_INSERT = """    INSERT INTO callback_events (callback_id, at, from_state, to_state, reason, attempt, source,
        corr_id)
    VALUES (p_id, p_now, NULL, p_state, NULL, p_attempt, p_source, p_corr_id);
"""


def _edited(text: str, old: str, new: str) -> str:
    if old not in text:  # migration 8's text is frozen: this fails at import, never silently
        raise ValueError(f"migration 12: {old.strip()[:40]!r} not in migration 8's function")
    return text.replace(old, new)


_ARGS_8 = "    p_idem_key varchar, p_idem_hash varchar, p_idem_expires double precision,\n"
_INSERT_8 = (
    "        p_priority, p_language, p_user_data, p_params, p_attempt, p_max_attempts, p_now,"
    " p_now\n    );\n"
)
BOOK_CALLBACK_WITH_HISTORY = _edited(
    _edited(
        BOOK_CALLBACK_WITH_KEY, _ARGS_8, _ARGS_8 + "    p_corr_id varchar, p_source varchar,\n"
    ),
    _INSERT_8,
    _INSERT_8 + _HISTORY_INSERT,
)
_DROP_VERSION_3 = """
DROP FUNCTION IF EXISTS dialback_book_callback(
    bigint, integer, double precision, integer, varchar, varchar, varchar, varchar, varchar,
    varchar, varchar, double precision, double precision, integer, varchar, jsonb, jsonb,
    integer, integer, double precision
)
"""


def apply(conn: sa.Connection) -> None:
    """Add the nullable corr_id column and its partial index; book with the creation row."""
    # Nullable without a default: PostgreSQL records the column in its catalogue and rewrites
    # nothing, so the ACCESS EXCLUSIVE lock is held for moments. The index build (inside the
    # migration's one transaction, so not CONCURRENTLY) reads callback_events once and holds
    # its writes meanwhile; the index itself starts empty.
    conn.exec_driver_sql("ALTER TABLE callback_events ADD COLUMN corr_id VARCHAR(64)")
    _ix_corr_id.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(BOOK_CALLBACK_WITH_HISTORY)
        conn.exec_driver_sql(_DROP_VERSION_3)

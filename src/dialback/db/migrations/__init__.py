"""Versioned schema migrations, applied in order and recorded in ``schema_migrations``.

Each step is a frozen module (``m001_initial``, ...) holding its own copy of what it creates:
a schema change adds a new step and changes ``db/schema.py`` to match, and never edits a
released step. A test holds a database migrated from empty equal to ``db/schema.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dialback.db.migrations import (
    m001_initial,
    m002_book_callback,
    m003_open_number_index,
    m004_completed_index,
    m005_parked_callbacks,
    m006_routed_deadline_index,
    m007_retention,
    m008_idempotency_keys,
    m009_operators,
    m010_audit_log,
    m011_history_indexes,
    m012_event_corr_id,
    m013_list_page_index,
)


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    name: str
    apply: Callable[[sa.Connection], None]


MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", m001_initial.apply),
    Migration(2, "dialback_book_callback: a booking in one round trip", m002_book_callback.apply),
    Migration(
        3,
        "ix_callbacks_open_number: the booking count with a cached plan",
        m003_open_number_index.apply,
    ),
    Migration(
        4,
        "ix_callbacks_completed: completions per service by time (statistics, EWT)",
        m004_completed_index.apply,
    ),
    Migration(
        5,
        "parked_callbacks: rows the monitor set aside as unreadable (never block a batch)",
        m005_parked_callbacks.apply,
    ),
    Migration(
        6,
        "ix_callbacks_routed_deadline: the deadline sweep of routed callbacks",
        m006_routed_deadline_index.apply,
    ),
    Migration(
        7,
        "erasure_audit and ix_callin_tenant_created: retention and erasure",
        m007_retention.apply,
    ),
    Migration(
        8,
        "idempotency_keys: a retried create answers the first booking",
        m008_idempotency_keys.apply,
    ),
    Migration(
        9,
        "users, ui_sessions, login_flows, session_keys: operators sign in",
        m009_operators.apply,
    ),
    Migration(10, "audit_log: operators' actions and failed sign-ins", m010_audit_log.apply),
    Migration(
        11,
        "ix_callbacks_tenant_state_due, ix_callbacks_tenant_completed: history at scale",
        m011_history_indexes.apply,
    ),
    Migration(
        12,
        "callback_events.corr_id: each state change's corrId; the booking records the creation",
        m012_event_corr_id.apply,
    ),
    Migration(
        13,
        "ix_callbacks_tenant_state_due_id: the admin list's page in index order",
        m013_list_page_index.apply,
    ),
]

_versions = sa.Table(
    "schema_migrations",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)


def _pending_and_apply(conn: sa.Connection) -> list[int]:
    if conn.dialect.name == "postgresql":
        # One migrator at a time across replicas starting together.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(4242001)"))
    _versions.create(conn, checkfirst=True)
    done = set(conn.execute(sa.select(_versions.c.version)).scalars())
    applied = []
    for m in MIGRATIONS:
        if m.version in done:
            continue
        m.apply(conn)
        conn.execute(
            _versions.insert().values(version=m.version, name=m.name, applied_at=time.time())
        )
        applied.append(m.version)
    return applied


async def migrate(engine: AsyncEngine) -> list[int]:
    """Apply every pending migration in one transaction; return the versions applied."""
    if engine.dialect.name != "postgresql":
        async with engine.begin() as conn:
            return await conn.run_sync(_pending_and_apply)
    # Not under the request timeouts of ``engine`` (db.engine.DbTimeouts): a step may take
    # longer than any request may (an index on a large table), and waits its turn behind
    # another replica's migration.
    unbounded = create_async_engine(engine.url, poolclass=sa.pool.NullPool)
    try:
        async with unbounded.begin() as conn:
            return await conn.run_sync(_pending_and_apply)
    finally:
        await unbounded.dispose()


async def current_version(engine: AsyncEngine) -> int:
    """The highest applied migration version, 0 for an empty database."""
    async with engine.connect() as conn:
        has = await conn.run_sync(lambda c: sa.inspect(c).has_table("schema_migrations"))
        if not has:
            return 0
        v = (await conn.execute(sa.select(sa.func.max(_versions.c.version)))).scalar()
        return int(v or 0)


def latest_version() -> int:
    """The version the code expects."""
    return MIGRATIONS[-1].version

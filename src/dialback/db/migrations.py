"""Versioned schema migrations, applied in order and recorded in ``schema_migrations``.

Each migration is frozen once released: a schema change adds a new step, never edits one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.db import schema


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    name: str
    apply: Callable[[sa.Connection], None]


def _initial(conn: sa.Connection) -> None:
    schema.metadata.create_all(conn)


# One booking in one statement (see dialback.callbacks.store.PostgresStore): under READ
# COMMITTED each statement of a VOLATILE plpgsql function takes a fresh snapshot, so the count
# after the lock sees every booking committed for the number before the lock was granted.
# The lock is transaction-scoped: the caller runs the call as its own (autocommit) transaction,
# so the row is committed before the next booking for the number may count. p_slot_start and
# p_slot_total are both NULL when the slot has no capacity limit.
_BOOK_CALLBACK = """
CREATE OR REPLACE FUNCTION dialback_book_callback(
    p_lock_key bigint, p_max_open integer, p_slot_start double precision, p_slot_total integer,
    p_id varchar, p_tenant_id varchar, p_service_id varchar, p_service_name varchar,
    p_phone_number varchar, p_state varchar, p_offer_type varchar,
    p_desired_time double precision, p_due_at double precision, p_priority integer,
    p_language varchar, p_user_data jsonb, p_params jsonb, p_attempt integer,
    p_max_attempts integer, p_now double precision,
    OUT outcome text, OUT open_count integer
) LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock_key);
{count}    IF open_count >= p_max_open THEN
        outcome := 'open_limit';
        RETURN;
    END IF;
    IF p_slot_total IS NOT NULL THEN
        IF p_slot_total <= 0 THEN
            outcome := 'full';
            RETURN;
        END IF;
        INSERT INTO capacity_usage AS u (service_id, slot_start, booked)
        VALUES (p_service_id, p_slot_start, 1)
        ON CONFLICT (service_id, slot_start) DO UPDATE SET booked = u.booked + 1
         WHERE u.booked < p_slot_total;
        IF NOT FOUND THEN
            outcome := 'full';
            RETURN;
        END IF;
    END IF;
    INSERT INTO callbacks (
        id, tenant_id, service_id, service_name, phone_number, state, offer_type,
        desired_time, due_at, slot_start, priority, language, user_data, params, attempt,
        max_attempts, created_at, updated_at
    ) VALUES (
        p_id, p_tenant_id, p_service_id, p_service_name, p_phone_number, p_state, p_offer_type,
        p_desired_time, p_due_at, p_slot_start,
        p_priority, p_language, p_user_data, p_params, p_attempt, p_max_attempts, p_now, p_now
    );
    outcome := 'ok';
END
$fn$
"""


# Version 2 counted through EXECUTE, planned at each call: a cached generic plan, fixed while
# the table was nearly empty, could pick the (tenant_id, created_at) index and then read every
# row of the tenant on each booking as the table grew. Planning cost more than the rest of the
# booking together.
_COUNT_PLANNED_EACH_CALL = """
    EXECUTE 'SELECT count(*) FROM callbacks WHERE tenant_id = $1 AND phone_number = $2'
         || ' AND state IN (''SCHEDULED'', ''QUEUED'', ''ROUTING'', ''PROCESSING'')'
       INTO open_count USING p_tenant_id, p_phone_number;
"""
# Version 3 counts through ix_callbacks_open_number, the only index that fits the statement
# (its predicate is the statement's own), so the cached plan stays right as the table grows.
_COUNT_CACHED_PLAN = """
    SELECT count(*) INTO open_count FROM callbacks
     WHERE phone_number = p_phone_number AND tenant_id = p_tenant_id
       AND state IN ('SCHEDULED', 'QUEUED', 'ROUTING', 'PROCESSING');
"""


def _book_callback_function(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_BOOK_CALLBACK.replace("{count}", _COUNT_PLANNED_EACH_CALL))


def _open_number_index(conn: sa.Connection) -> None:
    # A database created at version 3 or later has the index from version 1's create_all.
    schema.ix_callbacks_open_number.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_BOOK_CALLBACK.replace("{count}", _COUNT_CACHED_PLAN))


MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _initial),
    Migration(2, "dialback_book_callback: a booking in one round trip", _book_callback_function),
    Migration(
        3, "ix_callbacks_open_number: the booking count with a cached plan", _open_number_index
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
    async with engine.begin() as conn:
        return await conn.run_sync(_pending_and_apply)


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

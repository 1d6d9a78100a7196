"""A database migrated from empty is exactly what ``db/schema.py`` describes, on both engines.

The migrations are frozen copies; ``db/schema.py`` is what the code queries. This holds the two
together: the migrated database and one built by ``schema.metadata.create_all`` reflect alike
(tables, columns, types, nullability, defaults, keys, indexes and their predicates, and on
SQLite the very DDL text, whitespace aside: SQLite writes a column that ``ALTER TABLE ... ADD
COLUMN`` added into the table's text without CREATE TABLE's line break), and both name exactly
the metadata's tables and indexes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.db import schema
from dialback.db.engine import create_engine
from dialback.db.migrations import MIGRATIONS, migrate

EXPECTED = "expected"  # the PostgreSQL schema that schema.metadata.create_all builds


def _unqualified(sql: str | None) -> str | None:
    """``sql`` without the schema names that qualify a serial column's sequence."""
    return re.sub(rf'"?(?:public|{EXPECTED})"?\.', "", sql) if sql else sql


def _one_spaced(sql: str | None) -> str | None:
    """``sql`` with each run of whitespace as one space."""
    return re.sub(r"\s+", " ", sql) if sql else sql


def describe(conn: sa.Connection, db_schema: str | None) -> dict[str, Any]:
    """Everything the inspector reads of every table but ``schema_migrations``."""
    insp = sa.inspect(conn)
    dialect = conn.dialect
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names(schema=db_schema)):
        if table == "schema_migrations":
            continue
        out[table] = {
            "columns": [
                (
                    c["name"],
                    c["type"].compile(dialect=dialect),
                    c["nullable"],
                    _unqualified(c.get("default")),
                )
                for c in insp.get_columns(table, schema=db_schema)
            ],
            "primary_key": insp.get_pk_constraint(table, schema=db_schema),
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in insp.get_unique_constraints(table, schema=db_schema)
            ),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in insp.get_foreign_keys(table, schema=db_schema)
            ),
            "indexes": sorted(
                (
                    i["name"],
                    tuple(i["column_names"]),
                    bool(i["unique"]),
                    sorted((k, str(v)) for k, v in i.get("dialect_options", {}).items()),
                )
                for i in insp.get_indexes(table, schema=db_schema)
                if not i.get("duplicates_constraint")  # a unique constraint's own index
            ),
        }
    return out


def native_ddl(conn: sa.Connection, db_schema: str) -> list[tuple[str, ...]]:
    """The engine's own record of the indexes (PostgreSQL) or of every object (SQLite)."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
            " WHERE name NOT LIKE 'sqlite_%' AND tbl_name != 'schema_migrations'"
        )
        return sorted((kind, name, table, _one_spaced(sql)) for kind, name, table, sql in rows)
    rows = conn.execute(
        sa.text(
            "SELECT indexname, replace(indexdef, :prefix, '') FROM pg_indexes"
            " WHERE schemaname = :schema AND tablename != 'schema_migrations'"
        ),
        {"schema": db_schema, "prefix": f"{db_schema}."},
    )
    return sorted(tuple(r) for r in rows)


def metadata_names() -> tuple[set[str], set[str]]:
    """The tables and index names that schema.metadata describes."""
    tables = set(schema.metadata.tables)
    indexes = {ix.name for t in schema.metadata.tables.values() for ix in t.indexes}
    return tables, {str(name) for name in indexes}


@pytest.fixture
async def engines(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine, str]]:
    """(a database migrated from empty, one built by create_all, the schema to read)."""
    engine = create_engine(database_url)
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:  # the clone of the migrated template, emptied
            await conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            await conn.execute(sa.text("CREATE SCHEMA public"))
            await conn.execute(sa.text(f"CREATE SCHEMA {EXPECTED}"))
        try:
            yield engine, engine, "public"
        finally:
            await engine.dispose()
        return
    expected = create_engine(f"sqlite+aiosqlite:///{tmp_path}/expected.db")
    try:
        yield engine, expected, "main"
    finally:
        await engine.dispose()
        await expected.dispose()


async def test_a_database_migrated_from_empty_is_what_schema_py_describes(
    engines: tuple[AsyncEngine, AsyncEngine, str],
) -> None:
    migrated, expected, db_schema = engines
    assert await migrate(migrated) == [m.version for m in MIGRATIONS]
    postgres = migrated.dialect.name == "postgresql"
    expected_schema = EXPECTED if postgres else db_schema
    async with expected.begin() as conn:
        await conn.run_sync(
            lambda c: schema.metadata.create_all(
                c.execution_options(schema_translate_map={None: EXPECTED}) if postgres else c
            )
        )
    async with migrated.connect() as conn:
        got = await conn.run_sync(describe, db_schema)
        got_ddl = await conn.run_sync(native_ddl, db_schema)
    async with expected.connect() as conn:
        want = await conn.run_sync(describe, expected_schema)
        want_ddl = await conn.run_sync(native_ddl, expected_schema)

    tables, indexes = metadata_names()
    assert set(got) == tables
    assert {ix[0] for t in got.values() for ix in t["indexes"]} == indexes
    for table in sorted(tables):
        assert got[table] == want[table], table
    assert got_ddl == want_ddl
    if postgres:  # the partial index keeps its predicate
        [(_, open_number)] = [r for r in got_ddl if r[0] == "ix_callbacks_open_number"]
        assert "WHERE" in open_number and "SCHEDULED" in open_number


async def test_migration_1_is_frozen_without_the_open_number_index(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/v1.db")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(MIGRATIONS[0].apply)
            names = await conn.run_sync(
                lambda c: {ix["name"] for ix in sa.inspect(c).get_indexes("callbacks")}
            )
    finally:
        await engine.dispose()
    assert "ix_callbacks_open_number" not in names
    assert {"ix_callbacks_due", "ix_callbacks_phone"} <= names


async def test_migration_12_adds_the_event_corr_id_without_a_rewrite(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    try:
        async with engine.begin() as conn:
            if postgres:  # the clone of the migrated template, emptied
                await conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                await conn.execute(sa.text("CREATE SCHEMA public"))
            for m in MIGRATIONS[:11]:
                await conn.run_sync(m.apply)
            await conn.execute(
                sa.text(
                    "INSERT INTO callback_events (callback_id, at, to_state, attempt, source)"
                    " VALUES ('cb-1', 1.0, 'QUEUED', 1, 'monitor')"
                )
            )
            before = await _relfilenode(conn) if postgres else None
            await conn.run_sync(MIGRATIONS[11].apply)
            assert await _relfilenode(conn) == before  # PostgreSQL rewrote nothing
            old = (await conn.execute(sa.text("SELECT corr_id FROM callback_events"))).all()
            assert old == [(None,)]
            if postgres:
                q = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_callback_events_corr_id'"
                indexdef = (await conn.execute(sa.text(q))).scalar()
                assert indexdef is not None and "WHERE (corr_id IS NOT NULL)" in indexdef
                nargs = (
                    await conn.execute(
                        sa.text(
                            "SELECT array_agg(pronargs ORDER BY pronargs) FROM pg_proc"
                            " WHERE proname = 'dialback_book_callback'"
                        )
                    )
                ).scalar()
                # Migration 8's stays for the previous release's replicas; migration 3's goes.
                assert nargs == [23, 25]
            else:
                q = "SELECT sql FROM sqlite_master WHERE name = 'ix_callback_events_corr_id'"
                assert "WHERE corr_id IS NOT NULL" in str((await conn.execute(sa.text(q))).scalar())
    finally:
        await engine.dispose()


async def _relfilenode(conn: Any) -> int | None:
    if conn.dialect.name != "postgresql":
        return None
    q = "SELECT relfilenode FROM pg_class WHERE relname = 'callback_events'"
    return int((await conn.execute(sa.text(q))).scalar())

"""Engine creation for PostgreSQL (asyncpg) and the embedded SQLite store (aiosqlite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def normalise_url(url: str) -> str:
    """Map plain ``postgresql://`` / ``sqlite://`` URLs onto their async drivers."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """Create the async engine for ``url``; SQLite gets WAL and a busy timeout."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # As many connections as pool + overflow would allow, but kept open once opened: overflow
    # connections are closed on return and reopened on the next burst (a backend fork each).
    # hide_parameters: an error's text never quotes the statement's values (userData, numbers).
    return create_async_engine(
        url, pool_size=2 * pool_size, max_overflow=0, pool_pre_ping=False, hide_parameters=True
    )

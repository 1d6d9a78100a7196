"""Engine creation for PostgreSQL (asyncpg) and the embedded SQLite store (aiosqlite)."""

from __future__ import annotations

from dataclasses import dataclass
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


# How much longer than the server's statement_timeout the client waits for an answer: the
# server's own timeout (a clean error, the connection stays usable) comes first; the client's
# is for a server that cannot answer at all (frozen, partitioned).
CLIENT_MARGIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class DbTimeouts:
    """How long a PostgreSQL call may wait before it fails as an outage (503, never a hang)."""

    connect_seconds: float = 5.0
    statement_seconds: float = 5.0
    lock_seconds: float = 2.0
    idle_in_transaction_seconds: float = 30.0
    pool_seconds: float = 3.0

    def connect_args(self) -> dict[str, Any]:
        """asyncpg ``connect`` arguments: the connect and client-side command timeouts, and the
        server-side timeouts as session settings (sent with the startup packet, no round trip)."""
        return {
            "timeout": self.connect_seconds,
            "command_timeout": self.statement_seconds + CLIENT_MARGIN_SECONDS,
            "server_settings": {
                "statement_timeout": _ms(self.statement_seconds),
                "lock_timeout": _ms(self.lock_seconds),
                "idle_in_transaction_session_timeout": _ms(self.idle_in_transaction_seconds),
            },
        }


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def create_engine(url: str, pool_size: int = 10, timeouts: DbTimeouts | None = None) -> AsyncEngine:
    """Create the async engine for ``url``; SQLite gets WAL and a busy timeout, PostgreSQL
    ``timeouts`` (the defaults when None) on every wait."""
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
    bounds = timeouts or DbTimeouts()
    engine = create_async_engine(
        url,
        pool_size=2 * pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        # An error's text never quotes the statement's values (userData, numbers).
        hide_parameters=True,
        pool_timeout=bounds.pool_seconds,
        connect_args=bounds.connect_args(),
    )
    _invalidate_timed_out(engine)
    return engine


def _invalidate_timed_out(engine: AsyncEngine) -> None:
    """A connection whose call timed out on the client side is dropped, not reused."""

    @sa.event.listens_for(engine.sync_engine, "handle_error")
    def _timed_out(ctx: sa.engine.ExceptionContext) -> None:
        # The server did not answer (frozen, partitioned): reused, the connection would make
        # the next request wait out the timeout again, and SQLAlchemy's graceful close of it
        # waits up to 2 s more for an answer that will not come. Abort it: no network wait.
        if not isinstance(ctx.original_exception, TimeoutError):
            return
        ctx.is_disconnect = True
        ctx.invalidate_pool_on_disconnect = False  # the others time out on their own
        conn = ctx.connection
        if conn is not None and not conn.closed and not conn.invalidated:
            driver = conn.connection.driver_connection
            if driver is not None:
                driver.terminate()

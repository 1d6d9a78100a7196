"""The one raw-PostgreSQL layer: asyncpg beneath SQLAlchemy, for the hot paths.

Two ways in, both with asyncpg's errors read as the SQLAlchemy errors the rest of dialback
handles (``as_dbapi_error``):

- ``RawPool``: a minimal connection pool of its own, for one-statement autocommit calls (the
  booking function).
- ``run``: one statement on the asyncpg connection under a pooled SQLAlchemy connection (in
  its transaction, if begun), skipping SQLAlchemy's compilation and result processing.

Nothing else in dialback imports asyncpg.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, NoReturn

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dialback.db.engine import DbTimeouts
from dialback.kit.errors import is_unavailable_sqlstate


def as_dbapi_error(exc: BaseException, statement: str) -> BaseException:
    """An error of raw asyncpg as the SQLAlchemy error the rest of dialback handles.

    Unreachable, starting, restarting, shut-down, frozen (a timeout) or read-only server, a
    statement or lock wait past its timeout -> ``OperationalError`` (a dependency outage: 503,
    POSTGRES_STATUS); a value the server refused (SQLSTATE class 22) -> ``DBAPIError`` (the 400
    safety net); anything else unchanged.
    """
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError,
    ) or is_unavailable_sqlstate(sqlstate):
        return sa.exc.OperationalError(statement, None, exc)
    if sqlstate.startswith("22"):
        return sa.exc.DBAPIError(statement, None, exc)
    return exc


def _raise_translated(exc: Exception, statement: str) -> NoReturn:
    err = as_dbapi_error(exc, statement)
    if err is exc:
        raise exc
    raise err from exc


class _Connections:
    """A minimal asyncpg connection pool: up to ``size`` connections, opened on demand and kept.

    asyncpg's own pool costs ~50 µs of CPU per acquire + release (queues, timeouts, proxies)
    and, by default, a reset query (a round trip) on every release; a booking is one autocommit
    statement that leaves nothing behind on its connection, so it needs neither. A connection
    whose call failed other than with a server error (cancelled, broken) is closed, not reused.
    """

    def __init__(self, connect_kwargs: dict[str, Any], size: int, wait_seconds: float) -> None:
        self._connect_kwargs = connect_kwargs
        self.size = size
        self.wait_seconds = wait_seconds
        self._idle: list[Any] = []
        self._count = 0  # open or opening
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    async def acquire(self) -> Any:
        """A connection for one call; give it back with ``release``. ``TimeoutError`` when none
        comes free within ``wait_seconds`` (connecting has its own timeout)."""
        deadline: float | None = None
        while True:
            if self._closed:
                raise asyncpg.InterfaceError("the booking pool is closed")
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._count -= 1
            if self._count < self.size:
                self._count += 1
                try:
                    return await asyncpg.connect(**self._connect_kwargs)
                except BaseException:
                    self._count -= 1
                    self._wake()
                    raise
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.wait_seconds
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except (asyncio.CancelledError, TimeoutError) as exc:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the wake-up on
                else:
                    self._waiters.remove(waiter)
                if isinstance(exc, TimeoutError):
                    raise TimeoutError(
                        f"no booking connection came free within {self.wait_seconds}s "
                        f"(all {self.size} busy)"
                    ) from None
                raise

    def release(self, conn: Any, *, reusable: bool) -> None:
        """Give ``conn`` back; close it when ``reusable`` is false or the pool is closed."""
        if reusable and not self._closed and not conn.is_closed():
            self._idle.append(conn)
        else:
            self._count -= 1
            conn.terminate()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close the idle connections now, the busy ones when they are released."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._count -= 1
            try:
                await asyncio.wait_for(conn.close(), timeout=2)
            except Exception:
                conn.terminate()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


class RawPool:
    """Up to ``size`` raw asyncpg connections to ``engine``'s database, for autocommit calls,
    each wait bounded by ``timeouts`` (connect, statement, lock, a free connection)."""

    def __init__(self, engine: AsyncEngine, size: int, timeouts: DbTimeouts) -> None:
        # The same connection arguments SQLAlchemy's asyncpg dialect would use for this URL.
        _args, kwargs = engine.dialect.create_connect_args(engine.url)
        for key in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            kwargs.pop(key, None)
        kwargs.update(timeouts.connect_args())
        self._pool = _Connections(dict(kwargs), max(1, size), timeouts.pool_seconds)

    async def start(self) -> None:
        """Open one connection now: a wrong URL or password fails the start, not a call."""
        conn = await self._pool.acquire()
        self._pool.release(conn, reusable=True)

    async def close(self) -> None:
        """Close the connections (busy ones when their call ends)."""
        await self._pool.close()

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        """Run ``sql`` as its own transaction; its first row."""
        conn = None
        reusable = False
        try:
            conn = await self._pool.acquire()
            row = await conn.fetchrow(sql, *args)
            reusable = True
            return row
        except Exception as exc:
            # A server error (SQLSTATE) leaves an autocommit connection usable.
            reusable = isinstance(exc, asyncpg.PostgresError) and not isinstance(
                exc, asyncpg.PostgresConnectionError
            )
            _raise_translated(exc, sql)
        finally:
            if conn is not None:
                self._pool.release(conn, reusable=reusable)


async def _begin(adapted: Any, driver: Any) -> None:
    """Begin the transaction SQLAlchemy's asyncpg adapter would begin at its first statement
    (and commits or rolls back with the SQLAlchemy transaction)."""
    if adapted.isolation_level == "autocommit":
        return
    tr = driver.transaction(
        isolation=adapted.isolation_level, readonly=adapted.readonly, deferrable=adapted.deferrable
    )
    await tr.start()
    # The adapter's own slot (SQLAlchemy 2.x): its commit and rollback end this transaction.
    adapted._transaction = tr


async def run(conn: AsyncConnection, method: str, sql: str, *args: Any) -> Any:
    """Run ``sql`` with asyncpg's ``method`` on the connection under ``conn`` (in its
    transaction, if begun)."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        if conn.in_transaction() and not driver.is_in_transaction():
            # SQLAlchemy sends BEGIN lazily, with its first statement; this one bypasses it:
            # begin here or it commits on its own (a claim's leases outliving its rollback).
            await _begin(raw.dbapi_connection, driver)
        return await getattr(driver, method)(sql, *args)
    except Exception as exc:
        # SQLAlchemy did not see this statement fail: a connection that died must not go back
        # to the pool as if it were healthy, and the error must read as the outage it is.
        if driver.is_closed():
            await conn.invalidate()
        _raise_translated(exc, sql)
    except BaseException:
        if driver.is_closed():
            await conn.invalidate()
        raise

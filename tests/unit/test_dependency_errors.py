"""Which PostgreSQL errors mean "the store cannot serve now" (a 503, not a bug): asyncpg's own
exceptions as dialback meets them — raw from a connect, wrapped by SQLAlchemy's dialect, or
translated by ``db.pg.as_dbapi_error`` — classified by their SQLSTATE."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from dialback.db.pg import as_dbapi_error
from dialback.kit.errors import is_dependency_error, pg_sqlstate

X = asyncpg.exceptions
UNAVAILABLE = [
    X.CannotConnectNowError("the database system is starting up"),  # 57P03
    X.AdminShutdownError("terminating connection due to administrator command"),  # 57P01
    X.CrashShutdownError("terminating connection because of crash"),  # 57P02
    X.QueryCanceledError("canceling statement due to statement timeout"),  # 57014
    X.LockNotAvailableError("canceling statement due to lock timeout"),  # 55P03
    X.TooManyConnectionsError("sorry, too many clients already"),  # 53300
    X.DiskFullError("could not extend file"),  # 53100
    X.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),  # 25006
    X.IdleInTransactionSessionTimeoutError("terminating connection due to idle-in-tx"),  # 25P03
    X.ConnectionFailureError("connection failure"),  # 08006
    X.PostgresIOError("could not read block"),  # 58030
]
BUGS_OR_INPUT = [
    X.UniqueViolationError("duplicate key value"),  # 23505
    X.PostgresSyntaxError("syntax error"),  # 42601
    X.UndefinedTableError("relation does not exist"),  # 42P01
    X.CharacterNotInRepertoireError("invalid byte sequence"),  # 22021
    X.RaiseError("raised by plpgsql"),  # P0001
]


def wrapped(exc: Exception) -> sa.exc.DBAPIError:
    """``exc`` as SQLAlchemy's asyncpg dialect raises it: a generic DBAPIError over its own
    adapter error, the asyncpg exception as the cause."""
    adapter = AsyncAdapt_asyncpg_dbapi.Error(str(exc), exc)
    adapter.__cause__ = exc
    err = sa.exc.DBAPIError("SELECT 1", None, adapter)
    err.__cause__ = adapter
    return err


@pytest.mark.parametrize("exc", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_an_unavailable_server_is_a_dependency_error_however_it_arrives(exc: Exception) -> None:
    assert is_dependency_error(exc)  # raw: SQLAlchemy does not translate connect errors
    assert pg_sqlstate(wrapped(exc)) == exc.sqlstate
    assert is_dependency_error(wrapped(exc))
    translated = as_dbapi_error(exc, "SELECT 1")  # the booking pool
    assert isinstance(translated, sa.exc.OperationalError)
    assert is_dependency_error(translated)


@pytest.mark.parametrize("exc", BUGS_OR_INPUT, ids=lambda e: type(e).__name__)
def test_a_bug_or_a_bad_value_is_not(exc: Exception) -> None:
    assert not is_dependency_error(exc)
    assert not is_dependency_error(wrapped(exc))
    assert not isinstance(as_dbapi_error(exc, "SELECT 1"), sa.exc.OperationalError)


def test_waits_that_ran_out_are_dependency_errors() -> None:
    # SQLAlchemy's pool checkout timeout is not the builtin TimeoutError.
    assert is_dependency_error(sa.exc.TimeoutError("QueuePool limit of size 2 reached"))
    assert is_dependency_error(TimeoutError())  # asyncpg's connect / command timeout
    assert isinstance(as_dbapi_error(TimeoutError(), "SELECT 1"), sa.exc.OperationalError)
    assert not is_dependency_error(ValueError("a bug"))
    assert pg_sqlstate(ValueError("a bug")) == ""

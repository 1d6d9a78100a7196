"""Errors: those a request can end in (each a 4xx GES envelope naming the problem), and how a
dependency's failure is recognised."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """An error answered to the client with ``status`` and ``message`` in the envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data
        self.headers = headers


class BadRequest(ApiError):
    """400: the request is malformed or breaks a rule."""

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(400, message, data=data)


class Unauthorized(ApiError):
    """401: missing or wrong credentials."""

    def __init__(self, message: str = "missing or invalid x-api-key header") -> None:
        super().__init__(401, message)


class Forbidden(ApiError):
    """403: the caller is known but its role or tenant scope does not allow this."""

    def __init__(self, message: str) -> None:
        super().__init__(403, message)


class NotFound(ApiError):
    """404: no such resource for this tenant."""

    def __init__(self, message: str) -> None:
        super().__init__(404, message)


class Conflict(ApiError):
    """409: the resource exists or is in a state that forbids the change."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


class TooManyRequests(ApiError):
    """429: a capacity or throttling limit was reached."""

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(429, message, data=data)


# PostgreSQL SQLSTATEs (a class or one code) that mean the server cannot serve now, not that
# the statement or dialback is wrong: connection exceptions (08), insufficient resources
# (53: too many connections, disk full, out of memory), operator intervention (57P: shut
# down, crashed, *starting up* 57P03, database dropped), system errors (58: I/O), a statement
# or lock wait cut short by its timeout (57014, 55P03), a session idle in a transaction for too
# long (25P03) and a read-only server (25006: a standby, e.g. during a failover).
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57P", "58")
_PG_UNAVAILABLE_CODES = frozenset({"57014", "55P03", "25P03", "25006"})


def is_unavailable_sqlstate(sqlstate: str) -> bool:
    """Whether a PostgreSQL SQLSTATE means the server cannot serve now (a 503, not a bug)."""
    return sqlstate.startswith(_PG_UNAVAILABLE_CLASSES) or sqlstate in _PG_UNAVAILABLE_CODES


def pg_sqlstate(exc: BaseException) -> str:
    """The SQLSTATE behind ``exc`` (itself, SQLAlchemy's ``orig`` or a cause), or ``""``."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        code = getattr(cur, "sqlstate", None)
        if isinstance(code, str) and code:
            return code
        orig = getattr(cur, "orig", None)
        cur = orig if isinstance(orig, BaseException) else cur.__cause__
    return ""


def is_dependency_error(exc: BaseException) -> bool:
    """Whether ``exc`` means a dependency is unreachable (not a bug in dialback)."""
    import redis.exceptions as redis_exc
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(
        exc,
        (
            OSError,
            TimeoutError,
            redis_exc.ConnectionError,
            redis_exc.TimeoutError,
            OperationalError,
            InterfaceError,
            PoolTimeout,  # no pooled connection came free within the pool timeout
        ),
    ):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if is_unavailable_sqlstate(pg_sqlstate(exc)):
        return True
    return type(exc).__module__.startswith("asyncpg") and "Connection" in type(exc).__name__


def is_dns_failure(exc: BaseException) -> bool:
    """Whether a host-name lookup failure is behind ``exc``."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, socket.gaierror):
            return True
        text = str(cur)
        if (
            "Name or service not known" in text
            or "nodename nor servname" in text
            or "Temporary failure in name resolution" in text
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


# PostgreSQL's "try the transaction again" errors: deadlock detected, serialization failure.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_retryable_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a deadlock or serialization failure: the
    transaction was rolled back and running it again is the cure."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 8:
        code = getattr(cur, "sqlstate", None) or getattr(cur, "pgcode", None)
        if code in _RETRYABLE_SQLSTATES:
            return True
        cur = getattr(cur, "orig", None) or cur.__cause__
        seen += 1
    return False

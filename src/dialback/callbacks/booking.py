"""Booking a callback in the store: one interface, one implementation per database.

The booking rules that must hold under concurrency — at most ``max_open`` open callbacks per
number, at most ``slot_total`` bookings per slot — are decided here, under a lock on the
number, together with the insert, so a refused booking writes nothing and an accepted one is
committed when ``book`` returns.

- ``PostgresStore``: one round trip. The plpgsql function ``dialback_book_callback``
  (migration 2) takes the number's advisory lock, counts, reserves and inserts; it runs as its
  own autocommit transaction on a small raw asyncpg pool (``db.pg.RawPool``).
- ``SqlAlchemyStore``: the same steps as separate statements in one SQLAlchemy transaction
  (the embedded SQLite store, where ``BEGIN IMMEDIATE`` is the lock).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.callbacks import repository as repo
from dialback.db.engine import DbTimeouts
from dialback.db.pg import RawPool

Outcome = Literal["ok", "open_limit", "full"]


@dataclass(frozen=True, slots=True)
class NewCallback:
    """A callback row to insert (state SCHEDULED, first attempt)."""

    id: str
    tenant_id: str
    service_id: str
    service_name: str
    phone_number: str
    offer_type: str
    desired_time: float | None
    due_at: float
    priority: int
    language: str
    max_attempts: int
    created_at: float
    user_data: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def row(self, slot_start: float | None) -> dict[str, Any]:
        """The ``callbacks`` row, booked into ``slot_start`` (None: no capacity limit)."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "service_id": self.service_id,
            "service_name": self.service_name,
            "phone_number": self.phone_number,
            "state": "SCHEDULED",
            "offer_type": self.offer_type,
            "desired_time": self.desired_time,
            "due_at": self.due_at,
            "slot_start": slot_start,
            "priority": self.priority,
            "language": self.language,
            "user_data": self.user_data,
            "params": self.params,
            "attempt": 1,
            "max_attempts": self.max_attempts,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Booking:
    """What ``book`` decided, and the number's open callbacks counted before it."""

    outcome: Outcome
    open_count: int


class CallbackStore(ABC):
    """Where callbacks are booked."""

    @abstractmethod
    async def book(
        self,
        cb: NewCallback,
        *,
        max_open: int,
        slot_start: float | None,
        slot_total: int | None,
    ) -> Booking:
        """Book ``cb`` unless the number has ``max_open`` open callbacks (``open_limit``) or
        the slot starting ``slot_start`` holds ``slot_total`` bookings already (``full``).

        ``slot_start`` and ``slot_total`` are both set (the slot has a limit) or both None.

        ``ok`` means the row (and its place in the slot) is committed; otherwise nothing was
        written.
        """

    @abstractmethod
    async def start(self) -> None:
        """Open connections (fails when the database is unreachable)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""


class SqlAlchemyStore(CallbackStore):
    """Booking through SQLAlchemy Core, in one transaction (the embedded SQLite store)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def start(self) -> None:
        return None  # the engine's pool connects on first use

    async def close(self) -> None:
        return None  # the Container disposes of the engine

    async def book(
        self,
        cb: NewCallback,
        *,
        max_open: int,
        slot_start: float | None,
        slot_total: int | None,
    ) -> Booking:
        async with self.engine.begin() as conn:
            await repo.lock_number(conn, cb.tenant_id, cb.phone_number)
            open_count = await repo.count_open_for_number(conn, cb.tenant_id, cb.phone_number)
            if open_count >= max_open:
                return Booking("open_limit", open_count)
            if slot_total is not None:
                assert slot_start is not None
                if not await repo.reserve_capacity(conn, cb.service_id, slot_start, slot_total):
                    return Booking("full", open_count)
            await repo.insert_callback(conn, cb.row(slot_start))
        return Booking("ok", open_count)


_BOOK_SQL = (
    "SELECT outcome, open_count FROM dialback_book_callback("
    + ", ".join(f"${i}" for i in range(1, 21))
    + ")"
)


def _json(value: dict[str, Any]) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # beyond 64 bits: the API refuses such integers, the store still holds them
        return json.dumps(value)


class PostgresStore(CallbackStore):
    """Booking with one call of ``dialback_book_callback`` on a small raw asyncpg pool."""

    def __init__(self, engine: AsyncEngine, size: int, timeouts: DbTimeouts | None = None) -> None:
        self._pool = RawPool(engine, size, timeouts or DbTimeouts())

    async def start(self) -> None:
        # One connection now: a wrong URL or password fails the start, not the first booking.
        await self._pool.start()

    async def close(self) -> None:
        await self._pool.close()

    async def book(
        self,
        cb: NewCallback,
        *,
        max_open: int,
        slot_start: float | None,
        slot_total: int | None,
    ) -> Booking:
        outcome, open_count = await self._pool.fetchrow(
            _BOOK_SQL,
            repo.number_lock_key(cb.tenant_id, cb.phone_number),
            max_open,
            slot_start,
            slot_total,
            cb.id,
            cb.tenant_id,
            cb.service_id,
            cb.service_name,
            cb.phone_number,
            "SCHEDULED",
            cb.offer_type,
            cb.desired_time,
            cb.due_at,
            cb.priority,
            cb.language,
            _json(cb.user_data),
            _json(cb.params),
            1,
            cb.max_attempts,
            cb.created_at,
        )
        return Booking(outcome, int(open_count))


def store_for(
    engine: AsyncEngine, pool_size: int, timeouts: DbTimeouts | None = None
) -> CallbackStore:
    """The store for ``engine``'s database (PostgreSQL waits bounded by ``timeouts``)."""
    if engine.dialect.name == "postgresql":
        return PostgresStore(engine, pool_size, timeouts)
    return SqlAlchemyStore(engine)

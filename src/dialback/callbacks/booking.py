"""Booking a callback in the store: one interface, one implementation per database.

The booking rules that must hold under concurrency — at most ``max_open`` open callbacks per
number, at most ``slot_total`` bookings per slot — are decided here, under a lock on the
number, together with the insert, so a refused booking writes nothing and an accepted one is
committed when ``book`` returns.

A create with an ``Idempotency-Key`` stores the key with the booking, in the same transaction:
a retry finds it (``find_key``), and a concurrent one with the same key gets ``duplicate`` and
the first booking's id instead of booking again.

The booking also writes the creation to the callback's history (NULL -> SCHEDULED), with the
corrId of the request that booked it.

- ``PostgresStore``: one round trip. The plpgsql function ``dialback_book_callback``
  (migrations 2, 3, 8 and 12) claims the key, takes the number's advisory lock, counts,
  reserves and inserts; it runs as its own autocommit transaction on a small raw asyncpg pool
  (``db.pg.RawPool``).
- ``SqlAlchemyStore``: the same steps as separate statements in one SQLAlchemy transaction
  (the embedded SQLite store, where ``BEGIN IMMEDIATE`` is the lock).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.callbacks import repository as repo
from dialback.db.engine import DbTimeouts
from dialback.db.pg import RawPool

Outcome = Literal["ok", "open_limit", "full", "duplicate"]


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
    source: str = "api"  # who booked it, as its history names it ("api", "admin")
    corr_id: str | None = None  # the booking request's corrId, as stored

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
class IdempotencyKey:
    """A create's Idempotency-Key, the hash of its request, and when the key expires."""

    key: str
    request_hash: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Booking:
    """What ``book`` decided, and the number's open callbacks counted before it; for
    ``duplicate``, the callback the key booked first and the hash of that request."""

    outcome: Outcome
    open_count: int
    existing: repo.KeyedCallback | None = None


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
        idem: IdempotencyKey | None = None,
    ) -> Booking:
        """Book ``cb`` unless the number has ``max_open`` open callbacks (``open_limit``) or
        the slot starting ``slot_start`` holds ``slot_total`` bookings already (``full``).

        ``slot_start`` and ``slot_total`` are both set (the slot has a limit) or both None.

        ``ok`` means the row (and its place in the slot, and ``idem``) is committed; otherwise
        nothing was written. With ``idem``, a key the tenant already booked with (unexpired)
        books nothing: ``duplicate``, with that booking.
        """

    @abstractmethod
    async def find_key(self, tenant_id: str, key: str, now: float) -> repo.KeyedCallback | None:
        """The callback the tenant's unexpired Idempotency-Key ``key`` booked, if any."""

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

    async def find_key(self, tenant_id: str, key: str, now: float) -> repo.KeyedCallback | None:
        async with self.engine.connect() as conn:
            return await repo.find_idempotency_key(conn, tenant_id, key, now)

    async def book(
        self,
        cb: NewCallback,
        *,
        max_open: int,
        slot_start: float | None,
        slot_total: int | None,
        idem: IdempotencyKey | None = None,
    ) -> Booking:
        try:
            return await self._book(cb, max_open, slot_start, slot_total, idem)
        except IntegrityError:
            # The same key booked concurrently (for another number: no lock in common).
            if idem is None:
                raise
            found = await self.find_key(cb.tenant_id, idem.key, cb.created_at)
            if found is None:
                raise
            return Booking("duplicate", 0, found)

    async def _book(
        self,
        cb: NewCallback,
        max_open: int,
        slot_start: float | None,
        slot_total: int | None,
        idem: IdempotencyKey | None,
    ) -> Booking:
        async with self.engine.begin() as conn:
            await repo.lock_number(conn, cb.tenant_id, cb.phone_number)
            if idem is not None:
                found = await repo.find_idempotency_key(conn, cb.tenant_id, idem.key, cb.created_at)
                if found is not None:
                    return Booking("duplicate", 0, found)
            open_count = await repo.count_open_for_number(conn, cb.tenant_id, cb.phone_number)
            if open_count >= max_open:
                return Booking("open_limit", open_count)
            if slot_total is not None:
                assert slot_start is not None
                if not await repo.reserve_capacity(conn, cb.service_id, slot_start, slot_total):
                    return Booking("full", open_count)
            await repo.insert_callback(conn, cb.row(slot_start))
            await repo.add_event(
                conn, cb.id, cb.created_at, None, "SCHEDULED", None, 1, cb.source, cb.corr_id
            )
            if idem is not None:
                await repo.insert_idempotency_key(
                    conn,
                    {
                        "tenant_id": cb.tenant_id,
                        "idem_key": idem.key,
                        "request_hash": idem.request_hash,
                        "callback_id": cb.id,
                        "created_at": cb.created_at,
                        "expires_at": idem.expires_at,
                    },
                )
        return Booking("ok", open_count)


_BOOK_SQL = (
    "SELECT outcome, open_count, existing_id, existing_hash FROM dialback_book_callback("
    + ", ".join(f"${i}" for i in range(1, 26))
    + ")"
)
_FIND_KEY_SQL = (
    "SELECT callback_id, request_hash FROM idempotency_keys"
    " WHERE tenant_id = $1 AND idem_key = $2 AND expires_at > $3"
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
        idem: IdempotencyKey | None = None,
    ) -> Booking:
        outcome, open_count, existing_id, existing_hash = await self._pool.fetchrow(
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
            idem.key if idem is not None else None,
            idem.request_hash if idem is not None else None,
            idem.expires_at if idem is not None else None,
            cb.corr_id,
            cb.source,
        )
        if outcome == "duplicate":
            return Booking(outcome, 0, repo.KeyedCallback(existing_id, existing_hash))
        return Booking(outcome, int(open_count))

    async def find_key(self, tenant_id: str, key: str, now: float) -> repo.KeyedCallback | None:
        row = await self._pool.fetchrow(_FIND_KEY_SQL, tenant_id, key, now)
        return repo.KeyedCallback(row[0], row[1]) if row is not None else None


def store_for(
    engine: AsyncEngine, pool_size: int, timeouts: DbTimeouts | None = None
) -> CallbackStore:
    """The store for ``engine``'s database (PostgreSQL waits bounded by ``timeouts``)."""
    if engine.dialect.name == "postgresql":
        return PostgresStore(engine, pool_size, timeouts)
    return SqlAlchemyStore(engine)

"""The one repository of the ``callbacks`` table (and its history and capacity usage).

SQLAlchemy Core on PostgreSQL and SQLite, except the monitor's claiming and marking (the
dispatch hot path): on PostgreSQL each is one statement sent as raw SQL through ``db.pg.run``
(no SQLAlchemy compilation or result processing), its own transaction unless the caller already
opened one on the connection. The booking itself is ``callbacks.booking``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.callbacks.lifecycle import OPEN_STATES, Event, Transition, queued_event
from dialback.db import pg
from dialback.db.schema import (
    callback_events,
    callbacks,
    capacity_usage,
    idempotency_keys,
    parked_callbacks,
)
from dialback.kit import jsontext
from dialback.kit.context import current_corr_id

CB = callbacks.c
PARKED = parked_callbacks.c
IK = idempotency_keys.c


async def insert_callback(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert one callback row."""
    await conn.execute(callbacks.insert().values(**values))


async def get_callback(conn: AsyncConnection, tenant_id: str, callback_id: str) -> Any | None:
    """A tenant's callback by id; another tenant's id reads as missing."""
    q = sa.select(callbacks).where(CB.id == callback_id, CB.tenant_id == tenant_id)
    return (await conn.execute(q)).first()


def number_lock_key(tenant_id: str, phone: str) -> int:
    """The PostgreSQL advisory-lock key of one tenant's number (a signed 64-bit integer)."""
    digest = hashlib.blake2b(f"{tenant_id}:{phone}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_number(conn: AsyncConnection, tenant_id: str, phone: str) -> None:
    """Serialise bookings for one number until the transaction ends (before counting them).

    PostgreSQL: a transaction-scoped advisory lock on the number. SQLite: take the database
    write lock now (BEGIN IMMEDIATE), so the count and the insert cannot interleave; this must
    be the first statement of the transaction.
    """
    if conn.dialect.name == "postgresql":
        key = number_lock_key(tenant_id, phone)
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    elif conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def count_open_for_number(conn: AsyncConnection, tenant_id: str, phone: str) -> int:
    """How many callbacks for this number are not yet completed."""
    q = sa.select(sa.func.count()).where(
        CB.tenant_id == tenant_id, CB.phone_number == phone, CB.state.in_(OPEN_STATES)
    )
    return int((await conn.execute(q)).scalar() or 0)


def _upsert(conn: AsyncConnection):  # type: ignore[no-untyped-def]
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


async def reserve_capacity(conn: AsyncConnection, service_id: str, slot: float, total: int) -> bool:
    """Atomically take one place in a slot; False when the slot is full."""
    if total <= 0:
        return False
    ins = _upsert(conn)(capacity_usage).values(service_id=service_id, slot_start=slot, booked=1)
    stmt = ins.on_conflict_do_update(
        index_elements=[capacity_usage.c.service_id, capacity_usage.c.slot_start],
        set_={"booked": capacity_usage.c.booked + 1},
        where=capacity_usage.c.booked < total,
    ).returning(capacity_usage.c.booked)
    return (await conn.execute(stmt)).first() is not None


async def release_capacity(conn: AsyncConnection, service_id: str, slot: float) -> None:
    """Give a place in a slot back (cancel, reschedule)."""
    await conn.execute(
        capacity_usage.update()
        .where(
            capacity_usage.c.service_id == service_id,
            capacity_usage.c.slot_start == slot,
            capacity_usage.c.booked > 0,
        )
        .values(booked=capacity_usage.c.booked - 1)
    )


async def slot_usage(
    conn: AsyncConnection, service_id: str, start: float, end: float
) -> dict[float, int]:
    """Booked count per slot start in [start, end)."""
    q = sa.select(capacity_usage.c.slot_start, capacity_usage.c.booked).where(
        capacity_usage.c.service_id == service_id,
        capacity_usage.c.slot_start >= start,
        capacity_usage.c.slot_start < end,
    )
    return {float(s): int(b) for s, b in (await conn.execute(q)).all()}


async def _sqlite_write_lock(conn: AsyncConnection) -> None:
    """SQLite has no row locks: take the database write lock before a read that a write will
    depend on, unless this transaction already holds it.

    Without it the read runs outside any transaction (the driver begins one only at the first
    write), so a transition could be decided on a row another connection changes before the
    write: an outcome that read SCHEDULED while ``mark_queued`` committed QUEUED recorded
    SCHEDULED -> QUEUED a second time.
    """
    raw = await conn.get_raw_connection()
    if not raw.driver_connection.in_transaction:  # type: ignore[union-attr]
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def _locked(conn: AsyncConnection, q: sa.Select[Any]) -> Any | None:
    """The first row of ``q``, locked until the transaction ends (PostgreSQL: the row,
    SQLite: the database for writes)."""
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    elif conn.dialect.name == "sqlite":
        await _sqlite_write_lock(conn)
    return (await conn.execute(q)).first()


async def lock_callback(conn: AsyncConnection, tenant_id: str, callback_id: str) -> Any | None:
    """A tenant's callback, locked for update until the transaction ends."""
    return await _locked(
        conn, sa.select(callbacks).where(CB.id == callback_id, CB.tenant_id == tenant_id)
    )


async def apply(conn: AsyncConnection, row: Any, t: Transition) -> None:
    """Write a decided transition of ``row``: its columns, its history (with the current
    corrId), the slot it frees."""
    await conn.execute(callbacks.update().where(CB.id == row.id).values(**t.values))
    corr = current_corr_id()
    for ev in t.events:
        await add_event(
            conn, row.id, t.at, ev.from_state, ev.to_state, ev.reason, ev.attempt, ev.source, corr
        )
    if t.release_slot is not None:
        await release_capacity(conn, row.service_id, t.release_slot)


def _event_row(ev: Event) -> dict[str, Any]:
    return {
        "from_state": ev.from_state,
        "to_state": ev.to_state,
        "reason": ev.reason,
        "attempt": ev.attempt,
        "source": ev.source,
        "corr_id": current_corr_id(),
    }


async def add_event(
    conn: AsyncConnection,
    callback_id: str,
    at: float,
    from_state: str | None,
    to_state: str,
    reason: str | None,
    attempt: int,
    source: str,
    corr_id: str | None,
) -> None:
    """Append one state change to a callback's history, made by the request or monitor step
    ``corr_id`` (as stored: ``kit.context.stored_corr_id``)."""
    await conn.execute(
        callback_events.insert().values(
            callback_id=callback_id,
            at=at,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            attempt=attempt,
            source=source,
            corr_id=corr_id,
        )
    )


async def position_in_queue(conn: AsyncConnection, row: Any) -> int:
    """1-based position among the service's queued callbacks (priority, then age)."""
    if row.queued_at is None:
        return 1
    q = sa.select(sa.func.count()).where(
        CB.service_id == row.service_id,
        CB.state == "QUEUED",
        sa.or_(
            CB.priority > row.priority,
            sa.and_(CB.priority == row.priority, CB.queued_at < row.queued_at),
        ),
    )
    return int((await conn.execute(q)).scalar() or 0) + 1


async def queued_count(conn: AsyncConnection, service_id: str) -> int:
    """Callbacks of the service waiting for an agent."""
    q = sa.select(sa.func.count()).where(CB.service_id == service_id, CB.state == "QUEUED")
    return int((await conn.execute(q)).scalar() or 0)


async def recent_completions(conn: AsyncConnection, service_id: str, limit: int = 32) -> list[Any]:
    """The service's last routed completions (queued_at, routed_at, completed_at), newest first."""
    q = (
        sa.select(CB.queued_at, CB.routed_at, CB.completed_at)
        .where(CB.service_id == service_id, CB.state == "COMPLETED", CB.routed_at.is_not(None))
        .order_by(CB.completed_at.desc())
        .limit(limit)
    )
    return list((await conn.execute(q)).all())


@dataclass(frozen=True, slots=True)
class CallbackFilter:
    """What an admin search (or the UI's list) narrows callbacks by; None: any."""

    tenant_id: str | None = None
    tenant_ids: tuple[str, ...] | None = None  # any of these (a scoped operator's tenants)
    state: str | None = None
    service_name: str | None = None
    created_from: float | None = None
    created_to: float | None = None
    due_from: float | None = None
    due_to: float | None = None
    parked: bool | None = None  # True: only parked callbacks, False: none of them
    # The number as typed; the service reads it as bookings do into ``phone_numbers``.
    phone_number: str | None = None
    phone_numbers: tuple[str, ...] | None = None  # E.164 forms, matched exactly


COUNT_CAP = 10_000
"""A search counts its matches exactly up to this many; beyond, it only says there are more."""

SORTS = ("-createdTime", "dueTime", "-dueTime")
"""The orders of a search: newest created first (the default), due time ascending, descending."""


def _order(sort: str) -> list[sa.ColumnElement[Any]]:
    if sort == "dueTime":
        return [CB.due_at.asc(), CB.id.asc()]
    if sort == "-dueTime":
        return [CB.due_at.desc(), CB.id.desc()]
    return [CB.created_at.desc(), CB.id]


def _conditions(f: CallbackFilter) -> sa.ColumnElement[bool]:
    conds = []
    if f.tenant_id:
        conds.append(CB.tenant_id == f.tenant_id)
    if f.tenant_ids is not None:
        conds.append(CB.tenant_id.in_(f.tenant_ids) if f.tenant_ids else sa.false())
    if f.state:
        conds.append(CB.state == f.state)
    if f.service_name:
        conds.append(CB.service_name == f.service_name)
    if f.created_from is not None:
        conds.append(CB.created_at >= f.created_from)
    if f.created_to is not None:
        conds.append(CB.created_at < f.created_to)
    if f.due_from is not None:
        conds.append(CB.due_at >= f.due_from)
    if f.due_to is not None:
        conds.append(CB.due_at < f.due_to)
    if f.parked is not None:
        conds.append(~_not_parked() if f.parked else _not_parked())
    if f.phone_numbers is not None:
        conds.append(CB.phone_number.in_(f.phone_numbers) if f.phone_numbers else sa.false())
    return sa.and_(sa.true(), *conds)


async def search_callbacks(
    conn: AsyncConnection,
    match: CallbackFilter,
    *,
    limit: int,
    offset: int,
    sort: str = "-createdTime",
) -> tuple[list[Any], int]:
    """A page of callbacks matching the filter in the ``sort`` order (``SORTS``), and how many
    match, counted up to ``COUNT_CAP + 1`` (more than ``COUNT_CAP`` match)."""
    where = _conditions(match)
    # Counting stops past the cap: an exact count reads every matching index entry, millions
    # for a big tenant's history, where a page reads 250.
    upto = sa.select(sa.literal(1)).select_from(callbacks).where(where).limit(COUNT_CAP + 1)
    count = sa.select(sa.func.count()).select_from(upto.subquery())
    total = int((await conn.execute(count)).scalar() or 0)
    # One probe of parked_callbacks per row (keyed by the callback's id: at most one match),
    # aliased so that the parked filter's own EXISTS still correlates on callbacks alone.
    park = parked_callbacks.alias("park")
    q = (
        sa.select(
            *_LIST_COLUMNS,
            park.c.callback_id.is_not(None).label("parked"),
            park.c.reason.label("park_reason"),
        )
        .select_from(callbacks.outerjoin(park, park.c.callback_id == CB.id))
        .where(where)
        .order_by(*_order(sort))
        .limit(limit)
        .offset(offset)
    )
    return list((await conn.execute(q)).all()), total


async def count_matching_by_state(
    conn: AsyncConnection, match: CallbackFilter, states: Sequence[str]
) -> dict[str, int]:
    """How many callbacks matching the filter are in each of ``states``, each counted up to
    ``COUNT_CAP + 1`` (one statement, a range of an index on state per state)."""
    # Not one grouped count: that reads every row of the filter, a big tenant's whole history.
    counts = [
        sa.select(sa.func.count())
        .select_from(
            sa.select(sa.literal(1))
            .where(_conditions(replace(match, state=s)))
            .limit(COUNT_CAP + 1)
            .subquery()
        )
        .scalar_subquery()
        .label(f"n{i}")
        for i, s in enumerate(states)
    ]
    row = (await conn.execute(sa.select(*counts))).one()
    return {s: int(n) for s, n in zip(states, row, strict=True)}


# The CSV export's columns, in the order views.export_rows unpacks them.
EXPORT_SELECT = (
    CB.id,
    CB.service_name,
    CB.phone_number,
    CB.state,
    CB.reason,
    CB.offer_type,
    CB.desired_time,
    CB.due_at,
    CB.created_at,
    CB.updated_at,
    CB.completed_at,
    CB.attempt,
    CB.max_attempts,
    CB.priority,
    CB.language,
)


async def export_batch(
    conn: AsyncConnection,
    match: CallbackFilter,
    tenant_id: str,
    after: tuple[float, str] | None,
    limit: int,
) -> list[Any]:
    """Up to ``limit`` of one tenant's callbacks matching the filter, oldest created first,
    after the keyset ``after`` (created_at, id); through ``ix_callbacks_tenant_created``."""
    where = [_conditions(match), CB.tenant_id == tenant_id]
    if after is not None:
        created, cid = after
        # The plain range makes the keyset an index range: the OR alone is a filter, and every
        # batch would scan the tenant's rows from its first.
        where.append(CB.created_at >= created)
        where.append(
            sa.or_(CB.created_at > created, sa.and_(CB.created_at == created, CB.id > cid))
        )
    q = (
        sa.select(*EXPORT_SELECT)
        .where(*where)
        .order_by(CB.created_at.asc(), CB.id.asc())
        .limit(limit)
    )
    return list((await conn.execute(q)).all())


async def callback_history(conn: AsyncConnection, callback_id: str) -> list[Any]:
    """A callback's state changes, oldest first."""
    q = (
        sa.select(callback_events)
        .where(callback_events.c.callback_id == callback_id)
        .order_by(callback_events.c.id)
    )
    return list((await conn.execute(q)).all())


async def events_by_corr_id(
    conn: AsyncConnection, corr_id: str, tenant_ids: Sequence[str] | None, limit: int
) -> list[Any]:
    """Up to ``limit`` state changes made by the request or step ``corr_id`` (as stored), oldest
    first, with their callback's tenant id; only of ``tenant_ids`` unless None (every tenant).
    Through ``ix_callback_events_corr_id``."""
    ev = callback_events.c
    q = (
        sa.select(callback_events, CB.tenant_id)
        .join(callbacks, CB.id == ev.callback_id)
        .where(ev.corr_id == corr_id)
        .order_by(ev.id)
        .limit(limit)
    )
    if tenant_ids is not None:
        q = q.where(CB.tenant_id.in_(list(tenant_ids)))
    return list((await conn.execute(q)).all())


async def find_callback(
    conn: AsyncConnection, callback_id: str, *, lock: bool = False
) -> Any | None:
    """A callback by id whatever its tenant (admin API, outcomes); locked for update until the
    transaction ends when ``lock``."""
    q = sa.select(callbacks).where(CB.id == callback_id)
    if lock:
        return await _locked(conn, q)
    return (await conn.execute(q)).first()


async def callbacks_by_ids(conn: AsyncConnection, ids: Sequence[str]) -> list[Any]:
    """The callbacks of these ids (whatever their tenant; no user data), soonest due first."""
    q = sa.select(*_LIST_COLUMNS).where(CB.id.in_(list(ids))).order_by(CB.due_at.asc(), CB.id)
    return list((await conn.execute(q)).all())


@dataclass(frozen=True, slots=True)
class Shown:
    """A callback row for display: its columns, ``user_data`` and ``params`` parsed where they
    can be rendered (else None, their raw text in ``unreadable``), and its parking if any."""

    row: Any
    user_data: Any
    params: dict[str, Any]
    unreadable: dict[str, str]
    parked: Any | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.row, name)


_TEXT = sa.Text()
_SHOWN_COLUMNS = [
    *(c for c in callbacks.c if c.name not in ("user_data", "params")),
    sa.cast(CB.user_data, _TEXT).label("user_data"),
    sa.cast(CB.params, _TEXT).label("params"),
]
# The admin list shows neither JSON column: reading them could fail on a hand-written row.
_LIST_COLUMNS = [c for c in callbacks.c if c.name not in ("user_data", "params")]


async def show_callback(conn: AsyncConnection, callback_id: str) -> Shown | None:
    """A callback by id whatever its tenant, for display: an unreadable stored value comes
    back as its raw text, never as an error."""
    row = (await conn.execute(sa.select(*_SHOWN_COLUMNS).where(CB.id == callback_id))).first()
    if row is None:
        return None
    user_data, raw_ud = jsontext.shown(row.user_data)
    params, raw_params = jsontext.shown(row.params, want_object=True)
    unreadable = {k: v for k, v in (("userData", raw_ud), ("params", raw_params)) if v is not None}
    return Shown(row, user_data, params or {}, unreadable, await parking(conn, callback_id))


async def count_open_for_service(conn: AsyncConnection, service_id: str) -> int:
    """How many of the service's callbacks are not yet completed."""
    q = sa.select(sa.func.count()).where(CB.service_id == service_id, CB.state.in_(OPEN_STATES))
    return int((await conn.execute(q)).scalar() or 0)


# The monitor: lease-based claiming, marking dispatched, applying outcomes, statistics.


class Claimed(NamedTuple):
    """A callback leased for dispatch: what its stream entry needs."""

    id: str
    tenant_id: str
    service_name: str
    phone_number: str
    attempt: int
    priority: int
    language: str
    desired_time: float | None
    due_at: float
    user_data: str  # compact JSON text
    params: dict[str, Any]  # the GES booking fields kept with it (CreateCallback.extra_params)


_CLAIM_COLUMNS = (
    CB.id,
    CB.tenant_id,
    CB.service_name,
    CB.phone_number,
    CB.attempt,
    CB.priority,
    CB.language,
    CB.desired_time,
    CB.due_at,
    CB.user_data,
    CB.params,
)

# The due rows are locked by the inner SELECT (other replicas skip them) and updated through
# the primary key: ``= ANY(ARRAY(...))`` keeps the plan an index lookup however big the table.
_PG_CLAIM = """
UPDATE callbacks SET lease_owner = $1, lease_expires_at = $2
WHERE id = ANY(ARRAY(
    SELECT id FROM callbacks
    WHERE state = 'SCHEDULED' AND due_at <= $3
      AND (lease_expires_at IS NULL OR lease_expires_at < $3)
      AND NOT EXISTS (SELECT 1 FROM parked_callbacks p WHERE p.callback_id = callbacks.id)
    ORDER BY due_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
))
RETURNING id, tenant_id, service_name, phone_number, attempt, priority, language,
    desired_time, due_at, user_data::text, params::text
"""

# The state change and its event rows in one statement (one round trip, atomic); only rows
# still leased to us and still SCHEDULED move (an outcome may already have moved one on).
# The rows are locked in id order first (``COLLATE "C"``: the order of Python's ``sorted``, in
# which the monitor applies outcomes): every transaction that locks several callbacks takes
# them in that one order, so none waits for another in a cycle (a deadlock).
_PG_MARK_QUEUED = """
WITH locked AS (
    SELECT id FROM callbacks
    WHERE id = ANY($1::varchar[]) AND lease_owner = $3 AND state = 'SCHEDULED'
    ORDER BY id COLLATE "C"
    FOR UPDATE
), moved AS (
    UPDATE callbacks c SET state = 'QUEUED', queued_at = $2, updated_at = $2,
        lease_owner = NULL, lease_expires_at = NULL
    FROM locked WHERE c.id = locked.id
    RETURNING c.id, c.attempt
), events AS (
    INSERT INTO callback_events (
        callback_id, at, from_state, to_state, reason, attempt, source, corr_id
    )
    SELECT id, $2, 'SCHEDULED', 'QUEUED', NULL, attempt, 'monitor', $4::varchar FROM moved
)
SELECT count(*) FROM moved
"""


class Unreadable(NamedTuple):
    """A due callback whose row cannot be read into a stream entry, and why (no values)."""

    id: str
    tenant_id: str
    reason: str


class Claim(NamedTuple):
    """What one claim leased: the readable rows (oldest due first) and the unreadable ones."""

    rows: list[Claimed]
    unreadable: list[Unreadable]


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number beyond the range of a double")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# 19 digits in a row: possibly an integer beyond 64 bits, which orjson would read as a float.
_LONG_DIGITS = re.compile(r"\d{19}")


def _loads(text: str | None) -> Any:
    if text is None:
        raise ValueError("missing")
    if _LONG_DIGITS.search(text):
        # Exact integers (the stdlib parser); orjson.dumps then refuses those beyond 64 bits.
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    return orjson.loads(text)


def _compact(text: str | None) -> str:
    try:
        return orjson.dumps(_loads(text)).decode()
    except TypeError as exc:  # orjson: "Integer exceeds 64-bit range"
        raise ValueError(str(exc)) from exc


def _params(text: str | None) -> dict[str, Any]:
    value = _loads(text) if text else {}
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _why(field: str, exc: Exception) -> str:
    """The reason a row is unreadable: the field and the parser's message (never the value)."""
    return f"{field}: {type(exc).__name__}: {exc}"[:200]


def _claimed(r: Any) -> Claimed | Unreadable:
    field = "userData"
    try:
        user_data = _compact(r[9])
        field = "params"
        params = _params(r[10])
    except (ValueError, RecursionError) as exc:
        return Unreadable(r[0], r[1], _why(field, exc))
    return Claimed(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], user_data, params)


def _due(c: Claimed) -> float:
    return c.due_at


def _not_parked() -> sa.ColumnElement[bool]:
    return ~sa.exists().where(PARKED.callback_id == CB.id)


async def claim_due(
    conn: AsyncConnection, owner: str, now: float, lease: float, limit: int
) -> Claim:
    """Lease up to ``limit`` due, unparked callbacks to ``owner``, oldest due first; others skip
    them. Each row is read on its own: one that cannot be read comes back in ``unreadable``
    (still leased: park it in the same transaction) and never fails the others."""
    if conn.dialect.name == "postgresql":
        rows = await pg.run(conn, "fetch", _PG_CLAIM, owner, now + lease, now, limit)
    else:
        due = (
            sa.select(CB.id)
            .where(
                CB.state == "SCHEDULED",
                CB.due_at <= now,
                sa.or_(CB.lease_expires_at.is_(None), CB.lease_expires_at < now),
                _not_parked(),
            )
            .order_by(CB.due_at)
            .limit(limit)
        )
        text = sa.Text()
        stmt = (
            callbacks.update()
            .where(CB.id.in_(due.scalar_subquery()))
            .values(lease_owner=owner, lease_expires_at=now + lease)
            .returning(
                *_CLAIM_COLUMNS[:-2],
                sa.type_coerce(CB.user_data, text),
                sa.type_coerce(CB.params, text),
            )
        )
        rows = list(await conn.execute(stmt))
    claimed: list[Claimed] = []
    unreadable: list[Unreadable] = []
    for r in rows:
        c = _claimed(r)
        if isinstance(c, Unreadable):
            unreadable.append(c)
        else:
            claimed.append(c)
    claimed.sort(key=_due)
    return Claim(claimed, unreadable)


async def park(conn: AsyncConnection, rows: list[Unreadable], now: float) -> None:
    """Set callbacks aside that cannot be dispatched (the claim skips them from now on) and
    give their leases back; their state is unchanged."""
    if not rows:
        return
    values = [
        {"callback_id": r.id, "tenant_id": r.tenant_id, "parked_at": now, "reason": r.reason}
        for r in rows
    ]
    await conn.execute(_upsert(conn)(parked_callbacks).values(values).on_conflict_do_nothing())
    await lock_in_id_order(conn, [r.id for r in rows])
    await conn.execute(
        callbacks.update()
        .where(CB.id.in_([r.id for r in rows]))
        .values(lease_owner=None, lease_expires_at=None)
    )


async def parking(conn: AsyncConnection, callback_id: str) -> Any | None:
    """Why and when a callback was parked, or None."""
    q = sa.select(parked_callbacks).where(PARKED.callback_id == callback_id)
    return (await conn.execute(q)).first()


async def parked_open_count(conn: AsyncConnection) -> int:
    """How many parked callbacks are still open (waiting for an operator)."""
    q = (
        sa.select(sa.func.count())
        .select_from(parked_callbacks.join(callbacks, CB.id == PARKED.callback_id))
        .where(CB.state.in_(OPEN_STATES))
    )
    return int((await conn.execute(q)).scalar() or 0)


async def lock_in_id_order(conn: AsyncConnection, ids: list[str]) -> None:
    """Lock these callbacks in id order (PostgreSQL; the one order, see ``_PG_MARK_QUEUED``)
    before one statement updates them all in whatever order its plan visits them."""
    if conn.dialect.name == "postgresql" and len(ids) > 1:
        q = sa.select(CB.id).where(CB.id.in_(ids)).order_by(CB.id.collate("C")).with_for_update()
        await conn.execute(q)


async def release_leases(conn: AsyncConnection, owner: str, ids: list[str]) -> None:
    """Give leases back so the next cycle (of any replica) retries at once."""
    await lock_in_id_order(conn, ids)
    await conn.execute(
        callbacks.update()
        .where(CB.id.in_(ids), CB.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


async def mark_queued(conn: AsyncConnection, owner: str, claimed: list[Any], now: float) -> int:
    """Move published callbacks SCHEDULED -> QUEUED (their history rows with the current
    corrId); rows whose lease was lost are left alone."""
    ids = [r.id for r in claimed]
    if conn.dialect.name == "postgresql":
        return int(
            await pg.run(conn, "fetchval", _PG_MARK_QUEUED, ids, now, owner, current_corr_id())
        )
    res = await conn.execute(
        callbacks.update()
        .where(CB.id.in_(ids), CB.lease_owner == owner, CB.state == "SCHEDULED")
        .values(
            state="QUEUED", queued_at=now, updated_at=now, lease_owner=None, lease_expires_at=None
        )
        .returning(CB.id)
    )
    # Only rows actually moved get the event: an outcome may already have moved a row on.
    moved = {cid for (cid,) in res.all()}
    events = [
        {"callback_id": r.id, "at": now, **_event_row(queued_event(r.attempt))}
        for r in claimed
        if r.id in moved
    ]
    if events:
        await conn.execute(callback_events.insert(), events)
    return len(moved)


async def cancelled_in_dispatch(conn: AsyncConnection, claimed: list[Claimed]) -> list[Claimed]:
    """Those of ``claimed`` (published) that a cancel completed at the attempt claimed, while
    they were leased: the routing engine has their entry and must be told to drop it."""
    q = sa.select(CB.id, CB.attempt).where(
        CB.id.in_([r.id for r in claimed]), CB.state == "COMPLETED", CB.reason == "cancelled"
    )
    ended = {(cid, attempt) for cid, attempt in (await conn.execute(q)).all()}
    return [r for r in claimed if (r.id, r.attempt) in ended]


async def no_parallel_scans(conn: AsyncConnection) -> None:
    """Keep this transaction's scans to one core: statistics must not starve the dispatch."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")


async def count_by_state(conn: AsyncConnection) -> dict[str, int]:
    """Open callbacks per state (for the monitor-size gauge)."""
    # IN, not != 'COMPLETED': the (state, due_at) index then skips the completed history.
    q = sa.select(CB.state, sa.func.count()).where(CB.state.in_(OPEN_STATES)).group_by(CB.state)
    return {s: int(n) for s, n in (await conn.execute(q)).all()}


async def due_backlog(conn: AsyncConnection, now: float) -> tuple[int, float | None]:
    """How many callbacks are due but not dispatched, and the oldest due time (parked ones
    excepted: they wait for an operator, not for the monitor)."""
    q = sa.select(sa.func.count(), sa.func.min(CB.due_at)).where(
        CB.state == "SCHEDULED", CB.due_at <= now, _not_parked()
    )
    n, oldest = (await conn.execute(q)).one()
    return int(n or 0), (float(oldest) if oldest is not None else None)


async def next_due(conn: AsyncConnection, after: float, until: float) -> float | None:
    """The earliest due time of a SCHEDULED callback in (``after``, ``until``], or None."""
    # min() over one (state, due_at) range: the first entry of ix_callbacks_due after ``after``.
    q = sa.select(sa.func.min(CB.due_at)).where(
        CB.state == "SCHEDULED", CB.due_at > after, CB.due_at <= until
    )
    value = (await conn.execute(q)).scalar()
    return float(value) if value is not None else None


# Aggregates for the statistics endpoint (read-only reporting).


async def open_counts(conn: AsyncConnection, service_ids: list[str]) -> dict[tuple[str, str], int]:
    """(service id, state) -> callbacks in that open state (through ``ix_callbacks_queue``)."""
    q = (
        sa.select(CB.service_id, CB.state, sa.func.count())
        .where(CB.service_id.in_(service_ids), CB.state.in_(OPEN_STATES))
        .group_by(CB.service_id, CB.state)
    )
    return {(sid, state): int(n) for sid, state, n in await conn.execute(q)}


async def completed_counts(
    conn: AsyncConnection, service_ids: list[str], since: float
) -> dict[tuple[str, str | None], int]:
    """(service id, reason) -> callbacks completed at or after ``since`` (through
    ``ix_callbacks_completed``)."""
    q = (
        sa.select(CB.service_id, CB.reason, sa.func.count())
        .where(
            CB.service_id.in_(service_ids),
            CB.state == "COMPLETED",
            CB.completed_at >= since,
        )
        .group_by(CB.service_id, CB.reason)
    )
    return {(sid, reason): int(n) for sid, reason, n in await conn.execute(q)}


# The deadline sweep (monitor.deadlines): routed attempts whose deadline has passed.


@dataclass(frozen=True, slots=True)
class DeadlineCutoffs:
    """Epoch cutoffs of one sweep: a routed row that entered its state (or was last
    republished) before its state's cutoff, or whose held deadline is before ``now``, is due."""

    now: float
    queued: float
    routing: float
    processing: float


def _overdue(c: DeadlineCutoffs) -> sa.ColumnElement[bool]:
    held = CB.lease_expires_at
    return sa.or_(
        sa.and_(CB.state == "QUEUED", held.is_not(None), held <= c.now),
        sa.and_(CB.state == "QUEUED", held.is_(None), CB.updated_at <= c.queued),
        sa.and_(CB.state == "ROUTING", held.is_(None), CB.updated_at <= c.routing),
        sa.and_(CB.state == "PROCESSING", held.is_(None), CB.updated_at <= c.processing),
    )


async def lock_overdue(conn: AsyncConnection, cutoffs: DeadlineCutoffs, limit: int) -> list[Any]:
    """Up to ``limit`` routed callbacks past a deadline, locked until the transaction ends
    (PostgreSQL: rows another replica's sweep holds are skipped; SQLite: the write lock)."""
    q = (
        sa.select(callbacks)
        .where(CB.state.in_(("QUEUED", "ROUTING", "PROCESSING")), _overdue(cutoffs))
        .order_by(CB.updated_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    elif conn.dialect.name == "sqlite":
        # Look before taking the database write lock: most sweeps find nothing.
        if (await conn.execute(q.with_only_columns(CB.id))).first() is None:
            return []
        await _sqlite_write_lock(conn)
    return list((await conn.execute(q)).all())


async def republish_counts(conn: AsyncConnection, rows: list[Any]) -> dict[tuple[str, int], int]:
    """(callback id, attempt) -> how often that attempt was republished (its history)."""
    if not rows:
        return {}
    ev = callback_events.c
    q = (
        sa.select(ev.callback_id, ev.attempt, sa.func.count())
        .where(
            ev.callback_id.in_([r.id for r in rows]),
            ev.from_state == "QUEUED",
            ev.to_state == "QUEUED",
        )
        .group_by(ev.callback_id, ev.attempt)
    )
    return {(cid, int(a)): int(n) for cid, a, n in await conn.execute(q)}


def claimed_from(row: Any) -> Claimed:
    """A callback row as its stream entry needs it (a republish of its current attempt)."""
    data = row.user_data
    return Claimed(
        row.id,
        row.tenant_id,
        row.service_name,
        row.phone_number,
        row.attempt,
        row.priority,
        row.language,
        row.desired_time,
        row.due_at,
        orjson.dumps(data if data is not None else {}).decode(),
        row.params or {},
    )


class KeyedCallback(NamedTuple):
    """The callback an Idempotency-Key booked, and the hash of the request that booked it."""

    callback_id: str
    request_hash: str


async def find_idempotency_key(
    conn: AsyncConnection, tenant_id: str, key: str, now: float
) -> KeyedCallback | None:
    """The callback booked with the tenant's unexpired ``key``, if any."""
    q = sa.select(IK.callback_id, IK.request_hash).where(
        IK.tenant_id == tenant_id, IK.idem_key == key, IK.expires_at > now
    )
    row = (await conn.execute(q)).first()
    return KeyedCallback(row.callback_id, row.request_hash) if row is not None else None


async def insert_idempotency_key(
    conn: AsyncConnection, values: dict[str, Any], *, purge: int = 2
) -> None:
    """Store a key with its booking, replacing the same key expired; purge a few expired keys."""
    now = values["created_at"]
    await conn.execute(
        idempotency_keys.delete().where(
            IK.tenant_id == values["tenant_id"],
            IK.idem_key == values["idem_key"],
            IK.expires_at <= now,
        )
    )
    await conn.execute(idempotency_keys.insert().values(**values))
    expired = (
        sa.select(IK.tenant_id, IK.idem_key)
        .where(IK.expires_at <= now)
        .order_by(IK.expires_at)
        .limit(purge)
    )
    gone = (await conn.execute(expired)).all()
    for tenant_id, key in gone:
        await conn.execute(
            idempotency_keys.delete().where(
                IK.tenant_id == tenant_id, IK.idem_key == key, IK.expires_at <= now
            )
        )

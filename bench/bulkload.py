"""The bench's bulk loader: months of callback history in a migrated PostgreSQL store by COPY.

Rows look like the real paths' rows: completed callbacks spread over ``days`` of history (so
retention has work to do) with their created and final events, open ones scheduled in the
future with their created event. They are spread over the services already in the store;
``ensure_services`` makes tenants and services through the real repositories when needed.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from dialback.db.engine import create_engine
from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from dialback.tenants import repository as tenants_repo

DAY = 86400.0
CALLBACK_COLUMNS = (
    "id",
    "tenant_id",
    "service_id",
    "service_name",
    "phone_number",
    "state",
    "reason",
    "offer_type",
    "desired_time",
    "due_at",
    "slot_start",
    "priority",
    "language",
    "user_data",
    "params",
    "attempt",
    "max_attempts",
    "last_reason",
    "created_at",
    "updated_at",
    "queued_at",
    "routed_at",
    "completed_at",
    "lease_owner",
    "lease_expires_at",
)
EVENT_COLUMNS = ("callback_id", "at", "from_state", "to_state", "reason", "attempt", "source")
_CHUNK = 50_000
_USER_DATA = json.dumps({"order": "A-1001", "segment": "gold"})
_PARAMS = json.dumps({})


@dataclass(frozen=True)
class Service:
    """Where loaded callbacks go."""

    tenant_id: str
    service_id: str
    name: str


@dataclass(frozen=True)
class LoadReport:
    """What a load wrote and what it cost."""

    callbacks: int
    completed: int
    scheduled: int
    events: int
    seconds: float
    analyze_seconds: float
    indexes: str  # "kept" (loaded into the migrated schema) or "rebuilt" (dropped, recreated)
    table_bytes: int
    index_bytes: int

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready figures."""
        return dict(self.__dict__)


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as asyncpg takes it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def ensure_services(url: str, tenants: int, per_tenant: int) -> list[Service]:
    """The store's services, after creating ``tenants`` x ``per_tenant`` if there are fewer."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            have = len(await tenants_repo.list_tenants(conn))
            cfg = ServiceConfig.model_validate({"businessHours": {"alwaysOpen": True}})
            for t in range(have, tenants):
                tenant = await tenants_repo.create_tenant(conn, f"hist{t}", {})
                for s in range(per_tenant):
                    await services_repo.create_service(conn, tenant.id, f"s{s}", cfg)
    finally:
        await engine.dispose()
    conn2 = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn2.fetch(
            "SELECT tenant_id, id, name FROM services ORDER BY tenant_id, name"
        )
    finally:
        await conn2.close()
    return [Service(r[0], r[1], r[2]) for r in rows]


def _rows(
    services: list[Service], n: int, scheduled: int, days: float, now: float, seed: int
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Chunks of (callback rows, event rows): ``n - scheduled`` completed, then scheduled."""
    rnd = random.Random(seed)
    # Skewed like a real estate: a few big tenants hold most rows (weights ~ 1/rank).
    tenants = sorted({s.tenant_id for s in services})
    weight = {t: 1.0 / (i + 1) for i, t in enumerate(tenants)}
    weights = [weight[s.tenant_id] for s in services]
    cbs: list[tuple[Any, ...]] = []
    evs: list[tuple[Any, ...]] = []
    for i in range(n):
        svc = rnd.choices(services, weights)[0]
        cid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        phone = f"+1{rnd.randrange(200_000_0000, 999_999_9999)}"
        if i < n - scheduled:
            created = now - rnd.random() * days * DAY
            due = created + rnd.random() * 3600
            done = due + 30 + rnd.random() * 600
            reason = "answered" if rnd.random() < 0.9 else "cancelled"
            cbs.append(
                (cid, svc.tenant_id, svc.service_id, svc.name, phone, "COMPLETED", reason,
                 "SCHEDULED", due, due, None, 0, "en-US", _USER_DATA, _PARAMS, 1, 1, reason,
                 created, done, due, due + 5, done, None, None)
            )  # fmt: skip
            evs.append((cid, created, None, "SCHEDULED", None, 1, "api"))
            evs.append((cid, done, "PROCESSING", "COMPLETED", reason, 1, "routing"))
        else:
            created = now - rnd.random() * 7 * DAY
            due = now + 3600 + rnd.random() * 30 * DAY
            cbs.append(
                (cid, svc.tenant_id, svc.service_id, svc.name, phone, "SCHEDULED", None,
                 "SCHEDULED", due, due, None, 0, "en-US", _USER_DATA, _PARAMS, 1, 1, None,
                 created, created, None, None, None, None, None)
            )  # fmt: skip
            evs.append((cid, created, None, "SCHEDULED", None, 1, "api"))
        if len(cbs) >= _CHUNK:
            yield cbs, evs
            cbs, evs = [], []
    if cbs:
        yield cbs, evs


async def _index_defs(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i"
        " WHERE i.tablename IN ('callbacks', 'callback_events') AND i.indexname NOT IN"
        " (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))"
    )
    return [(r[0], r[1]) for r in rows]


async def store_bytes(conn: asyncpg.Connection) -> tuple[int, int]:
    """(table bytes incl. TOAST, index bytes) of callbacks and callback_events."""
    row = await conn.fetchrow(
        "SELECT sum(pg_table_size(c)), sum(pg_indexes_size(c)) FROM unnest("
        "ARRAY['callbacks'::regclass, 'callback_events'::regclass]) AS c"
    )
    assert row is not None
    return int(row[0]), int(row[1])


async def bulk_load(
    url: str,
    services: list[Service],
    *,
    callbacks: int,
    scheduled: int,
    days: float = 90,
    rebuild_indexes: bool = False,
    seed: int = 14,
) -> LoadReport:
    """COPY ``callbacks`` rows (``scheduled`` of them open) with their events, then ANALYZE.

    With ``rebuild_indexes`` the secondary indexes are dropped first and created after.
    """
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        started = time.monotonic()
        dropped = await _index_defs(conn) if rebuild_indexes else []
        for name, _ in dropped:
            await conn.execute(f'DROP INDEX "{name}"')
        n_events = 0
        # The next chunk is made in a thread while PostgreSQL takes this one (making rows
        # costs about as much as COPYing them; the GIL is free while COPY waits).
        chunks = _rows(services, callbacks, scheduled, days, time.time(), seed)
        loop = asyncio.get_running_loop()
        upcoming = loop.run_in_executor(None, next, chunks, None)
        while (chunk := await upcoming) is not None:
            upcoming = loop.run_in_executor(None, next, chunks, None)
            cbs, evs = chunk
            await conn.copy_records_to_table("callbacks", records=cbs, columns=CALLBACK_COLUMNS)
            await conn.copy_records_to_table("callback_events", records=evs, columns=EVENT_COLUMNS)
            n_events += len(evs)
        if dropped:
            await conn.execute("SET maintenance_work_mem = '256MB'")
            for _, ddl in dropped:
                await conn.execute(ddl)
        loaded = time.monotonic() - started
        started = time.monotonic()
        # VACUUM too: the visibility map lets counts use index-only scans, as on a settled store.
        await conn.execute("VACUUM (ANALYZE) callbacks")
        await conn.execute("VACUUM (ANALYZE) callback_events")
        analyzed = time.monotonic() - started
        table, index = await store_bytes(conn)
    finally:
        await conn.close()
    return LoadReport(
        callbacks,
        callbacks - scheduled,
        scheduled,
        n_events,
        round(loaded, 2),
        round(analyzed, 2),
        "rebuilt" if rebuild_indexes else "kept",
        table,
        index,
    )


def load(url: str, tenants: int, per_tenant: int, **kw: Any) -> LoadReport:
    """``ensure_services`` then ``bulk_load``, from synchronous code."""

    async def go() -> LoadReport:
        services = await ensure_services(url, tenants, per_tenant)
        return await bulk_load(url, services, **kw)

    return asyncio.run(go())

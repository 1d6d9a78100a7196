"""History at scale: the hot queries' plans on a bulk-loaded store.

``HOT_QUERIES`` holds the statements of the hot paths as PostgreSQL runs them (the booking
function's open-number count, retrieve, the claim and the idle monitor's next due time, the
deadline sweep, the admin list, export, retention); ``plans`` EXPLAINs each with a sample of the loaded store's own values, and
``seq_scans`` / ``indexes`` read what a plan touches (the plan test and docs/performance.md
use these); ``figures`` measures goal 1 of issue #14 on the loaded store.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from bench.bulkload import asyncpg_dsn
from dialback.db.engine import create_engine
from dialback.kit.timefmt import utc_iso
from dialback.retention import repository as retention_repo
from dialback.settings import Settings
from dialback.tenants import repository as tenants_repo

_OPEN = "('SCHEDULED', 'QUEUED', 'ROUTING', 'PROCESSING')"


@dataclass(frozen=True)
class Sample:
    """Values of the loaded store the hot queries are run with."""

    tenant_id: str
    service_id: str
    callback_id: str
    phone_number: str
    now: float


# name -> (statement with {placeholders} from Sample, the index it must use)
HOT_QUERIES: dict[str, tuple[str, str]] = {
    "booking_open_number_count": (
        "SELECT count(*) FROM callbacks WHERE phone_number = '{phone_number}'"
        f" AND tenant_id = '{{tenant_id}}' AND state IN {_OPEN}",
        "ix_callbacks_open_number",
    ),
    "retrieve": (
        "SELECT * FROM callbacks WHERE id = '{callback_id}' AND tenant_id = '{tenant_id}'",
        "callbacks_pkey",
    ),
    "lookup_by_id": ("SELECT * FROM callbacks WHERE id = '{callback_id}'", "callbacks_pkey"),
    "history": (
        "SELECT * FROM callback_events WHERE callback_id = '{callback_id}' ORDER BY at, id",
        "ix_callback_events_callback_id",
    ),
    "open_for_service": (
        f"SELECT count(*) FROM callbacks WHERE service_id = '{{service_id}}' AND state IN {_OPEN}",
        "ix_callbacks_queue",
    ),
    "monitor_claim": (
        "SELECT id FROM callbacks WHERE state = 'SCHEDULED' AND due_at <= {now}"
        " AND (lease_expires_at IS NULL OR lease_expires_at < {now})"
        " AND NOT EXISTS (SELECT 1 FROM parked_callbacks p WHERE p.callback_id = callbacks.id)"
        " ORDER BY due_at LIMIT 500 FOR UPDATE SKIP LOCKED",
        "ix_callbacks_due",
    ),
    "monitor_next_due": (
        "SELECT min(due_at) FROM callbacks WHERE state = 'SCHEDULED' AND due_at > {now}"
        " AND due_at <= {now} + 0.5",
        "ix_callbacks_due",
    ),
    "deadline_scan": (
        "SELECT id FROM callbacks WHERE state IN ('QUEUED', 'ROUTING', 'PROCESSING') AND ("
        " (state = 'QUEUED' AND lease_expires_at IS NOT NULL AND lease_expires_at <= {now})"
        " OR (state = 'QUEUED' AND lease_expires_at IS NULL AND updated_at <= {now} - 60)"
        " OR (state = 'ROUTING' AND lease_expires_at IS NULL AND updated_at <= {now} - 60)"
        " OR (state = 'PROCESSING' AND lease_expires_at IS NULL AND updated_at <= {now} - 600))"
        " ORDER BY updated_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        "ix_callbacks_routed_deadline",
    ),
    "admin_list_scheduled_by_due": (
        "SELECT id, state, due_at, p.callback_id IS NOT NULL, p.reason FROM callbacks"
        " LEFT OUTER JOIN parked_callbacks p ON p.callback_id = callbacks.id"
        " WHERE callbacks.tenant_id = '{tenant_id}'"
        " AND state = 'SCHEDULED' AND due_at >= {now} AND due_at < {now} + 14 * 86400"
        " ORDER BY due_at, id LIMIT 250",
        "ix_callbacks_tenant_state_due_id",
    ),
    "admin_list_scheduled_count": (
        "SELECT count(*) FROM (SELECT 1 FROM callbacks WHERE tenant_id = '{tenant_id}'"
        " AND state = 'SCHEDULED' AND due_at >= {now} AND due_at < {now} + 14 * 86400"
        " LIMIT 10001) AS upto",
        "ix_callbacks_tenant_state_due_id",
    ),
    "admin_list_completed_by_due": (
        "SELECT id, state, due_at FROM callbacks WHERE tenant_id = '{tenant_id}'"
        " AND state = 'COMPLETED' AND due_at >= {now} - 7 * 86400 AND due_at < {now}"
        " ORDER BY due_at, id LIMIT 250",
        "ix_callbacks_tenant_state_due_id",
    ),
    "admin_list_newest": (
        "SELECT id, state FROM callbacks WHERE tenant_id = '{tenant_id}'"
        " ORDER BY created_at DESC, id LIMIT 250",
        "ix_callbacks_tenant_created",
    ),
    "export_batch": (
        "SELECT id, state FROM callbacks WHERE tenant_id = '{tenant_id}'"
        " AND created_at >= {now} - 7 * 86400 ORDER BY created_at, id LIMIT 1000",
        "ix_callbacks_tenant_created",
    ),
    "retention_purge_pick": (
        "SELECT id FROM callbacks WHERE tenant_id = '{tenant_id}' AND state = 'COMPLETED'"
        " AND completed_at < {now} - 30 * 86400 ORDER BY completed_at"
        " LIMIT 500 FOR UPDATE SKIP LOCKED",
        "ix_callbacks_tenant_completed",
    ),
    # The Developer page's lookup of what one corrId made, scoped to the operator's tenant.
    "events_by_corr_id": (
        "SELECT e.*, c.tenant_id FROM callback_events e JOIN callbacks c ON c.id = e.callback_id"
        " WHERE e.corr_id = '3f0c2a1e-5b7d-4e21-9c0a-1f2e3d4c5b6a'"
        " AND c.tenant_id IN ('{tenant_id}') ORDER BY e.id LIMIT 101",
        "ix_callback_events_corr_id",
    ),
    "completed_stats": (
        "SELECT count(*) FROM callbacks WHERE service_id = '{service_id}'"
        " AND state = 'COMPLETED' AND completed_at >= {now} - 3600",
        "ix_callbacks_completed",
    ),
}
HOT_TABLES = ("callbacks", "callback_events")


async def sample(conn: asyncpg.Connection) -> Sample:
    """The biggest tenant's values: its busiest service, one of its scheduled callbacks."""
    row = await conn.fetchrow(
        "SELECT tenant_id, service_id, count(*) AS n FROM callbacks"
        " WHERE state = 'SCHEDULED' GROUP BY 1, 2 ORDER BY n DESC LIMIT 1"
    )
    assert row is not None, "no scheduled callbacks loaded"
    cb = await conn.fetchrow(
        "SELECT id, phone_number FROM callbacks WHERE tenant_id = $1 AND state = 'SCHEDULED'"
        " LIMIT 1",
        row[0],
    )
    assert cb is not None
    return Sample(row[0], row[1], cb[0], cb[1], time.time())


def statement(name: str, s: Sample) -> str:
    """The hot query ``name`` with the sample's values."""
    return HOT_QUERIES[name][0].format(**s.__dict__)


async def explain(conn: asyncpg.Connection, sql: str, analyze: bool = False) -> dict[str, Any]:
    """The JSON plan of ``sql`` (run, in a rolled-back transaction, when ``analyze``)."""
    opts = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    tr = conn.transaction()
    await tr.start()
    try:
        text = await conn.fetchval(f"EXPLAIN ({opts}) {sql}")
    finally:
        await tr.rollback()
    doc = json.loads(text) if isinstance(text, str) else text
    return dict(doc[0])


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    node = plan.get("Plan", plan)
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def seq_scans(plan: dict[str, Any]) -> set[str]:
    """Relations the plan reads by sequential scan."""
    return {n["Relation Name"] for n in _nodes(plan) if n["Node Type"] == "Seq Scan"}


def indexes(plan: dict[str, Any]) -> set[str]:
    """Indexes the plan reads."""
    return {n["Index Name"] for n in _nodes(plan) if "Index Name" in n}


def summary(plan: dict[str, Any]) -> dict[str, Any]:
    """Time, buffers and the nodes of an analyzed plan, compact for a report."""
    top = plan["Plan"]
    return {
        "ms": round(float(plan.get("Execution Time", 0.0)), 3),
        "shared_hit": int(top.get("Shared Hit Blocks", 0)),
        "shared_read": int(top.get("Shared Read Blocks", 0)),
        "nodes": [
            n["Node Type"] + (f" {n['Index Name']}" if "Index Name" in n else "")
            for n in _nodes(plan)
        ],
    }


async def profile(url: str) -> dict[str, Any]:
    """Every hot query EXPLAINed (ANALYZE, BUFFERS) on the store at ``url``."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        s = await sample(conn)
        return {
            name: summary(await explain(conn, statement(name, s), analyze=True))
            for name in HOT_QUERIES
        }
    finally:
        await conn.close()


# The figures of goal 1, side by side in one run: create throughput, read latencies and the
# retention purge's cost, all on the bulk-loaded store.

RETENTION_DAYS = 30
_PAUSE = float(Settings.model_fields["retention_batch_pause_seconds"].default)
_ON = "on the bulk-loaded store (full: 10 M callbacks, 90% completed, 50 tenants x 10 services)"
GOALS: dict[str, dict[str, Any]] = {
    "creates_per_s_10m_rows": {
        "op": None,
        "value": None,
        "unit": "/s",
        "what": f"create throughput (32 connections) {_ON}",
    },
    "creates_per_s_10m_rows_ratio": {
        "op": ">=",
        "value": 0.9,
        "unit": "",
        "what": "creates_per_s_10m_rows / the same process's creates/s just before the load",
    },
    "retrieve_p99_ms_10m_rows": {
        "op": "<=",
        "value": 10,
        "unit": "ms",
        "what": f"retrieve p99, one request at a time, {_ON}",
    },
    "availability_p99_ms_10m_rows": {
        "op": "<=",
        "value": 10,
        "unit": "ms",
        "what": f"availability p99, one request at a time, {_ON}",
    },
    "admin_list_p99_ms_10m_rows": {
        "op": "<=",
        "value": 50,
        "unit": "ms",
        "what": "admin list p99: 250 rows, tenant + SCHEDULED + 14-day due range, by due time",
    },
    "purge_overhead_ratio": {
        "op": ">=",
        "value": 0.95,
        "unit": "",
        "what": "creates/s with the retention purge deleting old rows at the same time / without",
    },
}


@dataclass(frozen=True)
class Target:
    """What the history figures run against (dialback A of the bench run)."""

    database_url: str
    public_url: str
    admin_url: str
    admin_token: str
    api_key: str
    tenant: str  # the API key's tenant
    service: str
    rounds: int
    round_seconds: float


class Purger:
    """The retention purge as the sweeper runs it (its repository statement, batches of 500,
    the default pause between batches) over every tenant in a thread of its own, until stopped;
    counts the callbacks it deleted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.deleted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        engine = create_engine(self.url)
        try:
            async with engine.connect() as conn:
                tenant_ids = [t.id for t in await tenants_repo.list_tenants(conn)]
            while not self._stop.is_set():
                cutoff = time.time() - RETENTION_DAYS * 86400
                found = 0
                for tid in tenant_ids:
                    if self._stop.is_set():
                        break
                    async with engine.begin() as conn:
                        n, _ = await retention_repo.purge_completed_callbacks(
                            conn, tid, cutoff, 500
                        )
                    found += n
                    await asyncio.sleep(_PAUSE)
                self.deleted += found
                if not found:
                    raise RuntimeError("the purge ran out of rows to delete: load more history")
        finally:
            await engine.dispose()

    def __enter__(self) -> Purger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98] if len(times) >= 2 else times[0]


def _timed(client: httpx.Client, calls: list[tuple[str, str, Any]], seconds: float) -> float:
    """p99 in ms of ``calls`` made one after another, round robin, for ``seconds``."""
    times: list[float] = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline or len(times) < 50:
        method, path, body = calls[i % len(calls)]
        i += 1
        t0 = time.perf_counter()
        r = client.request(method, path, json=body)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:200]}")
    return _p99(times)


async def _read_targets(url: str, tenant: str) -> tuple[list[str], str]:
    """Loaded callback ids of ``tenant`` (for retrieve) and the tenant with most open rows."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        ids = [
            r[0]
            for r in await conn.fetch(
                "SELECT c.id FROM callbacks c JOIN tenants t ON t.id = c.tenant_id"
                " WHERE t.name = $1 LIMIT 1000",
                tenant,
            )
        ]
        biggest = await conn.fetchval(
            "SELECT t.name FROM callbacks c JOIN tenants t ON t.id = c.tenant_id"
            " WHERE c.state = 'SCHEDULED' GROUP BY t.name ORDER BY count(*) DESC LIMIT 1"
        )
    finally:
        await conn.close()
    return ids, str(biggest)


def latencies(t: Target) -> dict[str, float]:
    """Retrieve, availability and the admin list's p99 on the loaded store."""
    ids, biggest = asyncio.run(_read_targets(t.database_url, t.tenant))
    if not ids:
        raise RuntimeError(f"no loaded callbacks of tenant {t.tenant!r} to retrieve")
    now = time.time()
    due_from, due_to = utc_iso(now), utc_iso(now + 14 * 86400)
    admin_list = (
        f"/admin/v1/callbacks?tenant={biggest}&state=SCHEDULED&dueFrom={due_from}"
        f"&dueTo={due_to}&sort=dueTime&limit=250"
    )
    with (
        httpx.Client(base_url=t.public_url, headers={"x-api-key": t.api_key}, timeout=30) as pub,
        httpx.Client(
            base_url=t.admin_url, headers={"authorization": f"Bearer {t.admin_token}"}, timeout=30
        ) as adm,
    ):
        retrieve = [("POST", "/engagement/v3/callbacks/retrieve", {"id": i}) for i in ids]
        avail = [("GET", f"/engagement/v3/callbacks/availability/{t.service}", None)]
        return {
            "retrieve_p99_ms_10m_rows": _timed(pub, retrieve, t.round_seconds),
            "availability_p99_ms_10m_rows": _timed(pub, avail, t.round_seconds),
            "admin_list_p99_ms_10m_rows": _timed(adm, [("GET", admin_list, None)], t.round_seconds),
        }


def figures(
    t: Target,
    create_round: Callable[[], float],
    empty_creates_per_s: float,
    details: dict[str, Any],
) -> dict[str, float]:
    """Creates/s on the loaded store alone and with the purge running (alternating rounds,
    ratio of each pair's medians), then the read latencies; plans and purge counts in
    ``details``."""
    plain: list[float] = []
    purging: list[float] = []
    deleted = 0
    for r in range(t.rounds):
        for with_purge in (r % 2 == 1, r % 2 == 0):
            if with_purge:
                with Purger(t.database_url) as p:
                    purging.append(create_round())
                deleted += p.deleted
            else:
                plain.append(create_round())
    creates = statistics.median(plain)
    out = {
        "creates_per_s_10m_rows": creates,
        "creates_per_s_10m_rows_ratio": creates / empty_creates_per_s,
        "purge_overhead_ratio": statistics.median(
            [a / b for a, b in zip(purging, plain, strict=True)]
        ),
    }
    out.update(latencies(t))
    details["purge"] = {"callbacks_deleted": deleted, "rounds_plain": plain, "rounds": purging}
    details["plans"] = asyncio.run(profile(t.database_url))
    return out

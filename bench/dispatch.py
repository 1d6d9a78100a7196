"""Dispatch measurements with the real monitor of a dialback process (no simulator running).

Rows are generated inside PostgreSQL (``INSERT ... SELECT generate_series``): 100,000 rows in
about a second, a million in tens of seconds. Publication times are read from the routing
stream itself — the millisecond part of each entry id is the routing Redis's clock at XADD,
on this same machine — so lateness is the real due → published delay.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import redis
from testbed.metrics_parse import parse

from bench.load import percentile

INSERT_ROWS = """
INSERT INTO callbacks (id, tenant_id, service_id, service_name, phone_number, state, offer_type,
    desired_time, due_at, priority, language, user_data, params, attempt, max_attempts,
    created_at, updated_at)
SELECT gen_random_uuid()::text, $1, $2, $3, '+1415' || (2000000 + g % 8000000)::text,
    'SCHEDULED', 'SCHEDULED', $4::float8 + (g - 1) * $5::float8,
    $4::float8 + (g - 1) * $5::float8, g % 10, 'en-US',
    '{"orderId": "bulk"}'::jsonb, '{}'::jsonb, 1, 3, $6::float8, $6::float8
FROM generate_series(1, $7::int) AS g
"""
STREAM = "NewCallbackStream"
LATENESS = "ges_dispatch_lateness_seconds"


@dataclass
class Target:
    """Where the rows go: the bench tenant's service."""

    dsn: str
    tenant_id: str
    service_id: str
    service_name: str


async def _target(dsn: str, tenant: str, service: str) -> Target:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT t.id AS tid, s.id AS sid FROM tenants t JOIN services s ON s.tenant_id = t.id"
            " WHERE t.name = $1 AND s.name = $2",
            tenant,
            service,
        )
    finally:
        await conn.close()
    assert row is not None, f"no service {tenant}/{service}"
    return Target(dsn, row["tid"], row["sid"], service)


def target(dsn: str, tenant: str, service: str) -> Target:
    """The tenant and service ids for bulk rows."""
    return asyncio.run(_target(dsn, tenant, service))


async def _insert(t: Target, n: int, first_due: float, step: float, chunk: int) -> None:
    conn = await asyncpg.connect(t.dsn)
    try:
        done = 0
        while done < n:
            k = min(chunk, n - done)
            await conn.execute(
                INSERT_ROWS,
                t.tenant_id,
                t.service_id,
                t.service_name,
                first_due + done * step,
                step,
                time.time(),
                k,
            )
            done += k
    finally:
        await conn.close()


def insert_rows(t: Target, n: int, first_due: float, step: float, chunk: int = 100_000) -> None:
    """Insert ``n`` SCHEDULED callbacks due at ``first_due + i * step`` (chunks commit alone)."""
    asyncio.run(_insert(t, n, first_due, step, chunk))


async def _sql(dsn: str, sql: str) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def sql_value(dsn: str, sql: str) -> Any:
    """One value from one statement."""
    return asyncio.run(_sql(dsn, sql))


def _last_id(r: Any) -> str:
    last = r.xrevrange(STREAM, count=1)
    return last[0][0] if last else "0-0"


def _ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _new_entries(r: Any, after: str) -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []
    cursor = after
    while True:
        batch = r.xrange(STREAM, min=f"({cursor}", count=10_000)
        if not batch:
            return out
        out.extend(batch)
        cursor = batch[-1][0]


def _wait_published(r: Any, before_len: int, n: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = int(r.xlen(STREAM)) - before_len if r.exists(STREAM) else 0
        if got >= n:
            return got
        time.sleep(0.005)
    return int(r.xlen(STREAM)) - before_len if r.exists(STREAM) else 0


DUE_LEFT = (
    "SELECT count(*) FROM callbacks WHERE state = 'SCHEDULED'"
    " AND due_at <= extract(epoch FROM now())"
)


async def _marked_at(dsn: str, timeout: float) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await conn.fetchval(DUE_LEFT) == 0:
                return time.time()
            await asyncio.sleep(0.005)
    finally:
        await conn.close()
    raise RuntimeError("due callbacks were not all marked QUEUED in time")


def lead_seconds(n: int) -> float:
    """How long after its insert begins a drain of ``n`` rows comes due (the insert and one
    poll of the idle monitor fit in it)."""
    return 1.0 + n / 10_000


def measure_dispatch(t: Target, routing_url: str, n: int) -> dict[str, float]:
    """Drain rate of one process's monitor: ``n`` callbacks that all come due at once, from
    their due time until every one is published and marked QUEUED (the peer's clock likewise
    runs until every job's completion is written)."""
    r: Any = redis.Redis.from_url(routing_url, decode_responses=True)
    try:
        start_id = _last_id(r)
        before = int(r.xlen(STREAM)) if r.exists(STREAM) else 0
        began = time.time()
        # Due a little after the insert commits (one statement), so that the idle monitor knows
        # the time and is awake then, as it is for any callback booked ahead: the drain, not
        # the poll interval, is measured (lateness is measured on its own).
        due = began + lead_seconds(n)
        insert_rows(t, n, due, 0.0, chunk=n)
        committed = time.time()
        start = max(due, committed)
        got = _wait_published(r, before, n, timeout=60 + n / 1000)
        if got < n:
            raise RuntimeError(f"dispatch: only {got} of {n} published in time")
        # Polled only once all are published, so the poll does not load the store meanwhile.
        done = asyncio.run(_marked_at(t.dsn, timeout=60))
        first = r.xrange(STREAM, min=f"({start_id}", count=1)[0][0]
        last = _last_id(r)
        drain = done - start
        span = (_ms(last) - _ms(first)) / 1000
        return {
            "dispatch_per_s": n / drain,
            "dispatch_drain_s": drain,
            "dispatch_publish_rate_per_s": (n / span) if span > 0 else float(n),
            "dispatch_rows": float(n),
            "dispatch_insert_s": committed - began,
            "dispatch_first_publish_s": _ms(first) / 1000 - start,
            "dispatch_last_publish_s": _ms(last) / 1000 - start,
        }
    finally:
        r.close()


def histogram(internal_url: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of an unlabelled histogram on /metrics, by upper bound."""
    samples = parse(httpx.get(f"{internal_url}/metrics", timeout=30).text)
    return {
        float(labels["le"]): v
        for labels, v in samples.get(f"{name}_bucket", [])
        if not (set(labels) - {"le"})
    }


def lateness_histogram(internal_url: str) -> dict[float, float]:
    """Cumulative bucket counts of ges_dispatch_lateness_seconds, by upper bound."""
    return histogram(internal_url, LATENESS)


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` of the observations in between."""
    bounds = sorted(after)
    delta = [after[b] - before.get(b, 0.0) for b in bounds]
    total = delta[-1] if delta else 0
    if total <= 0:
        return float("nan")
    for b, cum in zip(bounds, delta, strict=True):
        if cum >= q * total:
            return b
    return bounds[-1]


def _iso(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def measure_lateness(
    t: Target,
    routing_url: str,
    internal_url: str,
    *,
    scheduled_rows: int,
    due_rows: int,
    seconds: float,
) -> dict[str, float]:
    """p99 due → published lateness of a steady stream among ``scheduled_rows`` future rows."""
    have = int(sql_value(t.dsn, "SELECT count(*) FROM callbacks WHERE state = 'SCHEDULED'") or 0)
    started = time.time()
    if have < scheduled_rows:
        # Spread over days 1-29 ahead: in the store and the due index, never due in this run.
        insert_rows(t, scheduled_rows - have, started + 86400, 28 * 86400 / scheduled_rows)
    insert_s = time.time() - started
    sql_value(t.dsn, "ANALYZE callbacks")
    total_rows = int(
        sql_value(t.dsn, "SELECT count(*) FROM callbacks WHERE state = 'SCHEDULED'") or 0
    )
    r: Any = redis.Redis.from_url(routing_url, decode_responses=True)
    try:
        start_id = _last_id(r)
        before_len = int(r.xlen(STREAM)) if r.exists(STREAM) else 0
        hist_before = lateness_histogram(internal_url)
        first_due = time.time() + 2.0
        insert_rows(t, due_rows, first_due, seconds / due_rows)
        time.sleep(max(0.0, first_due + seconds - time.time()))
        got = _wait_published(r, before_len, due_rows, timeout=30)
        hist_after = lateness_histogram(internal_url)
        entries = _new_entries(r, start_id)
    finally:
        r.close()
    # First publications only: the deadline sweep republishes the earlier drains' callbacks
    # (QUEUED, and no routing engine runs to take them) once their deadline passes.
    late = sorted(
        _ms(eid) / 1000 - _iso(f["dueTime"])
        for eid, f in entries
        if f.get("type") == "callback" and f.get("republish") == "0"
    )
    missing = max(0, due_rows - len(late))
    # Anything not published by now is at least this late: count it so, never drop it.
    worst = time.time() - (first_due + seconds)
    late = sorted(late + [worst] * missing)
    return {
        "dispatch_lateness_p99_s": percentile(late, 99),
        "dispatch_lateness_p50_s": percentile(late, 50),
        "dispatch_lateness_max_s": late[-1],
        "dispatch_lateness_p99_s_histogram_bound": histogram_quantile(
            hist_before, hist_after, 0.99
        ),
        "dispatch_lateness_scheduled_rows": float(total_rows),
        "dispatch_lateness_due_rows": float(due_rows),
        "dispatch_lateness_unpublished": float(max(0, due_rows - got)),
        "dispatch_lateness_window_s": seconds,
        "bulk_insert_s": insert_s,
    }

"""CSV export of many callbacks through the admin export route: rows/s and the server's RSS.

The rows are bulk-loaded into a tenant of their own (due a month ahead, so the monitor never
touches them) and exported with ``GET /admin/v1/callbacks/export?tenant=...``, read as it
streams. The server's peak RSS is its VmHWM, reset just before (``echo 5 > clear_refs``, where
the kernel allows it) and read after; VmRSS is also sampled every 10 ms meanwhile, so the
figure stands where the reset is refused.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import httpx

from bench import dispatch
from bench.stack import ADMIN_TOKEN, Dialback, create_tenant

EXPORT_TENANT = "export"
EXPORT_SERVICE = "history"


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def load_rows(db: Dialback, dsn: str, rows: int) -> None:
    """The export tenant with ``rows`` SCHEDULED callbacks due from 30 days ahead."""
    with db.admin() as admin:
        create_tenant(admin, EXPORT_TENANT, [EXPORT_SERVICE])
    t = dispatch.target(dsn, EXPORT_TENANT, EXPORT_SERVICE)
    dispatch.insert_rows(t, rows, time.time() + 30 * 86400, 1.0)
    # History has distinct creation times (a bulk chunk shares one), and the planner's
    # statistics know the rows, as autovacuum's would.
    dispatch.sql_value(
        dsn,
        "UPDATE callbacks SET created_at = created_at - 30 * 86400 * random()"
        f" WHERE tenant_id = '{t.tenant_id}'",
    )
    dispatch.sql_value(dsn, "ANALYZE callbacks")


def measure_export(db: Dialback, rows: int) -> dict[str, float]:
    """Stream the export tenant's CSV once; rows/s and peak RSS growth of the server."""
    pid = db.pid
    rss0 = _status_kib(pid, "VmRSS")
    reset = False
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        reset = True
    peak = [rss0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _status_kib(pid, "VmRSS"))
            time.sleep(0.01)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    lines = 0
    size = 0
    t0 = time.perf_counter()
    try:
        with (
            httpx.Client(timeout=300) as client,
            client.stream(
                "GET",
                f"{db.internal_url}/admin/v1/callbacks/export",
                params={"tenant": EXPORT_TENANT},
                headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            ) as r,
        ):
            r.raise_for_status()
            for chunk in r.iter_bytes():
                lines += chunk.count(b"\n")
                size += len(chunk)
        elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        th.join()
    hwm = _status_kib(pid, "VmHWM")
    got = lines - 1  # the header line
    if got != rows:
        raise RuntimeError(f"export: {got} rows streamed, {rows} expected")
    growth_kib = max(peak[0], hwm if reset else 0) - rss0
    return {
        "export_rows_per_s": got / elapsed,
        "export_rss_growth_mib": max(0, growth_kib) / 1024,
        "export_rows": float(got),
        "export_s": elapsed,
        "export_bytes": float(size),
    }

"""The CSV export of 100,000 callbacks streams: read in batches by keyset (a batch read only when
the one before is written), its memory bounded (the process's peak resident size, reset before:
tracemalloc would slow the test six-fold), and the CSV parses with every row."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import sqlalchemy as sa

from dialback.callbacks import repository as repo
from dialback.callbacks import views
from dialback.callbacks.repository import CallbackFilter
from dialback.callbacks.service import EXPORT_BATCH
from dialback.container import Container
from tests.support.factories import tenant_and_service
from tests.support.stack import make_settings

ROWS = 100_000
STATUS = Path("/proc/self/status")


def _kib(field: str) -> int:
    found = re.search(rf"{field}:\s+(\d+) kB", STATUS.read_text())
    assert found, field
    return int(found.group(1))


def _reset_peak() -> None:
    """Start the peak resident size (VmHWM) afresh from the current size (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


async def _insert(rt: Container, tenant_id: str, service_id: str, n: int, created: float) -> None:
    """``n`` callbacks in one INSERT ... SELECT (no Python row per callback); many share a
    created time, so the keyset's tie on id is exercised."""
    sql = sa.text(
        """
        WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :n)
        INSERT INTO callbacks (id, tenant_id, service_id, service_name, phone_number, state,
            offer_type, due_at, priority, language, user_data, params, attempt, max_attempts,
            created_at, updated_at)
        SELECT printf('%08x-0000-4000-8000-%012d', n, n), :tenant, :service, 'sales',
            printf('+1415555%04d', n % 10000), 'SCHEDULED', 'SCHEDULED', :created + 3 * 86400 + n,
            0, 'en-US', '{"secret": "never exported"}', '{}', 1, 3,
            :created + (n / 7), :created
        FROM seq
        """
    )
    async with rt.engine.begin() as conn:
        await conn.execute(
            sql, {"n": n, "tenant": tenant_id, "service": service_id, "created": created}
        )


async def test_an_export_of_100000_callbacks_streams_in_bounded_memory(tmp_path: Path) -> None:
    rt = Container(
        make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db",
            data_dir=str(tmp_path),
            simulator="off",
        )
    )
    await rt.start()
    try:
        tenant_id, service_id = await tenant_and_service(rt.engine, "bulk", "sales")
        await _insert(rt, tenant_id, service_id, ROWS, time.time() - 86400)
        out = tmp_path / "export.csv"
        served: list[int] = []  # rows the store had served when each chunk came out
        original = repo.export_batch

        async def counted(*args: object, **kwargs: object) -> list[object]:
            rows = await original(*args, **kwargs)  # type: ignore[arg-type]
            served.append(len(rows))
            return rows

        repo.export_batch = counted  # type: ignore[assignment]
        lag: list[int] = []
        half = 0
        try:
            batches = await rt.callbacks.export(None, CallbackFilter(), scope=None)
            before = _kib("VmRSS")
            _reset_peak()
            with out.open("w", newline="") as f:
                async for chunk in views.export_csv(batches):
                    f.write(chunk)
                    lag.append(sum(served))
                    if len(lag) == 1 + ROWS // (2 * EXPORT_BATCH):  # half the rows written
                        half = (_kib("VmHWM") - before) * 1024
            peak = (_kib("VmHWM") - before) * 1024
        finally:
            repo.export_batch = original  # type: ignore[assignment]
        size = out.stat().st_size
        assert size > 15_000_000
        # Each chunk is written before the next batch is read: the header first, then batch k
        # with k * EXPORT_BATCH rows served (and the last, empty read that ends the keyset).
        assert lag == [0, *(EXPORT_BATCH * k for k in range(1, ROWS // EXPORT_BATCH + 1))]
        assert served[-1] == 0 and len(served) == ROWS // EXPORT_BATCH + 1
        # Never the whole set (nor the whole CSV) in memory: the peak stays below the CSV's
        # size (the rows as Python objects would be several times it), and the second half of
        # the export adds nothing to the peak of the first (allocator and caches warm by then).
        assert peak < size, f"peak grew {peak} bytes for a {size}-byte export"
        # The bound allows a batch's rows and chunk (2,000 rows are about 2 MB) plus the
        # allocator's noise, and is half the CSV text of the second half (7.5 MB): keeping the
        # written text, or the rows, would cross it.
        assert peak - half < 4_000_000, f"peak {half} at half the rows, {peak} at the end"
        with out.open(newline="") as f:
            reader = csv.DictReader(f)
            ids = [row["id"] for row in reader]
            assert reader.fieldnames == list(views.EXPORT_COLUMNS)
        assert len(ids) == ROWS and len(set(ids)) == ROWS
        text = out.read_text()
        assert "never exported" not in text and "+14155550001" not in text
    finally:
        await rt.stop()

"""The list's use cases of ``CallbackService`` on both stores: the phone search (read as bookings
read it), the due-time sort, counts per state, the keyset export (ties on created time) and
bulk cancel within a scope."""

from __future__ import annotations

import time
from pathlib import Path

from dialback.callbacks.repository import CallbackFilter
from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.ui_client import runtime


async def test_search_counts_export_and_bulk_cancel(database_url: str, tmp_path: Path) -> None:
    rt = await runtime(database_url, tmp_path)
    try:
        now = time.time()
        acme, sales = await tenant_and_service(rt.engine, "acme", "sales")
        beta, beta_sales = await tenant_and_service(rt.engine, "beta", "sales")
        async with rt.engine.begin() as conn:
            cfg = ServiceConfig.model_validate(
                {"businessHours": {"alwaysOpen": True}, "validation": {"defaultCountry": "GB"}}
            )
            uk = (await services_repo.create_service(conn, beta, "uk", cfg)).id
        # Five share one created time: the export's keyset must break the tie on id.
        same = await insert_due_callbacks(
            rt.engine, acme, sales, 5, due_at=now + 500, created_at=now - 100
        )
        late = await insert_due_callbacks(
            rt.engine, acme, sales, 1, due_at=now + 9000, phone_number="+14155550123"
        )
        early = await insert_due_callbacks(
            rt.engine, beta, beta_sales, 1, due_at=now + 10, phone_number="+14155550123"
        )
        busy = await insert_due_callbacks(
            rt.engine, acme, sales, 1, state="PROCESSING", due_at=now + 20
        )
        london = await insert_due_callbacks(
            rt.engine,
            beta,
            uk,
            1,
            due_at=now + 5000,
            service_name="uk",
            phone_number="+442079460018",
        )
        cb = rt.callbacks

        by_due = await cb.search(None, CallbackFilter(), limit=3, offset=0, sort="dueTime")
        assert [r.id for r in by_due.rows][:2] == [*early, *busy] and by_due.total == 9
        latest = await cb.search(None, CallbackFilter(), limit=1, offset=0, sort="-dueTime")
        assert [r.id for r in latest.rows] == late
        phone = CallbackFilter(phone_number="(415) 555-0123")
        found = await cb.search(None, phone, limit=10, offset=0)
        assert {r.id for r in found.rows} == {*late, *early}
        # A national number under the default country of the services the filter covers.
        uk_number = CallbackFilter(phone_number="020 7946 0018", service_name="uk")
        assert [r.id for r in (await cb.search(None, uk_number, limit=5, offset=0)).rows] == london
        scoped = await cb.search(None, phone, limit=10, offset=0, scope=frozenset({"acme"}))
        assert [r.id for r in scoped.rows] == late

        counts = await cb.count_by_state(None, CallbackFilter())
        assert counts == {
            "SCHEDULED": 8,
            "QUEUED": 0,
            "ROUTING": 0,
            "PROCESSING": 1,
            "COMPLETED": 0,
        }
        assert (await cb.count_by_state("beta", CallbackFilter()))["SCHEDULED"] == 2

        batches = await cb.export(None, CallbackFilter(), batch=2)
        got = [(b.tenant, r.id) async for b in batches for r in b.rows]
        assert len(got) == 9 and len({cid for _, cid in got}) == 9
        assert [t for t, _ in got] == ["acme"] * 7 + ["beta"] * 2
        assert [cid for _, cid in got][:5] == sorted(same)

        result = await cb.bulk_cancel(
            [same[0], *busy, early[0], same[0]], scope=frozenset({"acme"})
        )
        assert result.cancelled == [same[0]]
        assert [(r.id, r.state) for r in result.refused] == [
            (busy[0], "PROCESSING"),
            (early[0], None),
        ]
        after = await cb.count_by_state(None, CallbackFilter())
        assert after["SCHEDULED"] == 7 and after["COMPLETED"] == 1
    finally:
        await rt.stop()

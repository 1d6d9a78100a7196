"""The Callback UI's callbacks list over HTTP (no browser): filters and their errors, the phone
search, scope, bulk cancel (its refusals, a Monitor's forged POST, no CSRF token), the CSV
export, and the admin API's same use cases."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from dialback.callbacks import repository
from dialback.callbacks.repository import CallbackFilter
from dialback.container import Container
from dialback.db.schema import callbacks, parked_callbacks
from dialback.identity.roles import Role
from dialback.ui.pages import callbacks_list
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.stack import ADMIN_TOKEN
from tests.support.ui_client import PASSWORD, audit_rows, runtime, signed_in

ROW_ID = re.compile(r'name="ids" value="([0-9a-f-]{36})"')


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Container]:
    """Tenants acme (sales, support) and beta (sales) with callbacks; sam (supervisor), mona
    (monitor), and sue, a supervisor of acme only."""
    c = await runtime(f"sqlite+aiosqlite:///{tmp_path}/dialback.db", tmp_path)
    await c.users.add("sam", frozenset({Role.SUPERVISOR}), password=PASSWORD)
    await c.users.add("mona", frozenset({Role.MONITOR}), password=PASSWORD)
    await c.users.add("sue", frozenset({Role.SUPERVISOR}), frozenset({"acme"}), password=PASSWORD)
    acme, acme_sales = await tenant_and_service(c.engine, "acme", "sales")
    beta, beta_sales = await tenant_and_service(c.engine, "beta", "sales")
    now = time.time()
    await insert_due_callbacks(c.engine, acme, acme_sales, 3, due_at=now + 3600)
    await insert_due_callbacks(
        c.engine, acme, acme_sales, 2, due_at=now + 7200, phone_number="+14155550123"
    )
    await insert_due_callbacks(
        c.engine, acme, acme_sales, 1, state="PROCESSING", phone_number="+14155550999"
    )
    await insert_due_callbacks(c.engine, acme, acme_sales, 1, state="COMPLETED", reason="handled")
    await insert_due_callbacks(
        c.engine, beta, beta_sales, 4, due_at=now + 60, phone_number="+14155550123"
    )
    try:
        yield c
    finally:
        await c.stop()


async def test_the_list_filters_counts_and_masks(rt: Container) -> None:
    async with await signed_in(rt, "sam") as ui:
        page = await ui.client.get("/ui/callbacks")
        assert page.status_code == 200, page.text
        assert len(ROW_ID.findall(page.text)) == 11
        assert "+14155550123" not in page.text and "+14*******23" in page.text
        assert 'name="tenant"' in page.text  # two tenants: the select is shown
        only_beta = await ui.client.get("/ui/callbacks", params={"tenant": "beta"})
        assert len(ROW_ID.findall(only_beta.text)) == 4
        # The number typed as a person would, national form: read as the booking read it.
        by_phone = await ui.client.get("/ui/callbacks", params={"phone": "(415) 555-0123"})
        assert len(ROW_ID.findall(by_phone.text)) == 6
        processing = await ui.client.get("/ui/callbacks", params={"state": "PROCESSING"})
        assert len(ROW_ID.findall(processing.text)) == 1
        # Counts for the other filters: every state, counted in the store.
        counts = dict(
            re.findall(r'data-state="(\w+)">.*?<span class="cb-count">(\d+)</span>', page.text)
        )
        assert counts == {
            "SCHEDULED": "9",
            "QUEUED": "0",
            "ROUTING": "0",
            "PROCESSING": "1",
            "COMPLETED": "1",
        }
        # The counts alone (what callbacks-list.js refreshes them with), for the same filters.
        fragment = await ui.client.get(
            "/ui/callbacks/counts", params={"tenant": "beta", "state": "COMPLETED"}
        )
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert re.search(r'data-state="SCHEDULED">.*?"cb-count">4<', fragment.text)
        bad = await ui.client.get("/ui/callbacks/counts", params={"due_from": "x"})
        assert bad.status_code == 400 and "Due from: not a date and time" in bad.text
        # Times typed are wall-clock times in the operator's zone (here New York, UTC-5/-4).
        ui.client.cookies.set("dialback_tz", "America/New_York")
        local = datetime.fromtimestamp(time.time() + 5000, ZoneInfo("America/New_York"))
        later = await ui.client.get(
            "/ui/callbacks", params={"due_from": local.strftime("%Y-%m-%dT%H:%M")}
        )
        assert later.status_code == 200 and len(ROW_ID.findall(later.text)) == 2
        ui.client.cookies.delete("dialback_tz")
        by_due = await ui.client.get("/ui/callbacks", params={"sort": "due", "state": "SCHEDULED"})
        ids = ROW_ID.findall(by_due.text)
        assert 'aria-sort="ascending"' in by_due.text
        api = await rt_api(rt, {"sort": "dueTime", "state": "SCHEDULED", "limit": 250})
        assert ids == [item["id"] for item in api["items"]]


async def rt_api(rt: Container, params: dict[str, object]) -> dict[str, object]:
    async with _admin_api(rt) as client:
        answer = await client.get("/admin/v1/callbacks", params=params)
        assert answer.status_code == 200, answer.text
        data: dict[str, object] = answer.json()["data"]
        return data


BAD_FILTERS = [
    ({"created_from": "yesterday"}, "created_from", "Created from: not a date and time"),
    (
        {"due_from": "2026-05-02T10:00", "due_to": "2026-05-01T10:00"},
        "due_to",
        "Due to: must be after due from",
    ),
    ({"state": "LOST"}, "state", "State: use one of SCHEDULED"),
    ({"phone": "12"}, "phone", "Phone number: "),
    ({"service": "<script>"}, "service", "Service: not a valid name"),
    ({"parked": "yes"}, "parked", "Parked: use only or none"),
    ({"page": "0"}, "", "Page: a whole number"),
]


async def test_bad_filters_answer_400_naming_the_field(rt: Container) -> None:
    async with await signed_in(rt, "mona") as ui:
        for params, field, text in BAD_FILTERS:
            page = await ui.client.get("/ui/callbacks", params=params)
            assert page.status_code == 400, (params, page.text)
            assert text in page.text, params
            if field:  # the message next to its field, the field marked and linked
                assert f'<span class="field-error" id="{field}-error">{text}' in page.text
                assert f'aria-describedby="{field}-error"' in page.text
                assert f'href="#f-{field}"' in page.text
            assert "<script>" not in page.text
            assert not ROW_ID.findall(page.text)


async def test_a_scoped_supervisor_sees_only_its_tenants(rt: Container) -> None:
    async with await signed_in(rt, "sue") as ui:
        page = await ui.client.get("/ui/callbacks")
        assert page.status_code == 200
        assert len(ROW_ID.findall(page.text)) == 7
        assert 'name="tenant"' not in page.text  # one tenant: no select
        other = await ui.client.get("/ui/callbacks", params={"tenant": "beta"})
        assert other.status_code == 403
        export = await ui.client.get("/ui/callbacks/export.csv")
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert len(rows) == 7 and {r["tenant"] for r in rows} == {"acme"}
        # A bulk cancel of another tenant's callback: "not found", nothing said about it.
        beta_ids = await _ids_of(rt, "beta")
        answer = await ui.client.post(
            "/ui/callbacks/cancel", data={"ids": beta_ids[:1], "csrf_token": await ui.csrf()}
        )
        assert answer.status_code == 200
        assert "Cancel 0 callbacks?" in answer.text and beta_ids[0] not in answer.text
        assert "not in your tenants" in answer.text
        done = await ui.client.post(
            "/ui/callbacks/cancel/confirm",
            data={"ids": beta_ids[:1], "csrf_token": await ui.csrf()},
        )
        assert done.headers["location"].endswith("cancelled=0&skipped=0&missing=1")
    assert len(await _ids_of(rt, "beta", "SCHEDULED")) == 4


async def _ids_of(rt: Container, tenant: str, state: str | None = None) -> list[str]:
    page = await rt.callbacks.search(
        tenant, CallbackFilter(state=state), limit=250, offset=0, sort="dueTime"
    )
    return [r.id for r in page.rows]


async def test_bulk_cancel_cancels_and_says_why_not(
    rt: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await signed_in(rt, "sam") as ui:
        scheduled = ROW_ID.findall(
            (await ui.client.get("/ui/callbacks", params={"state": "SCHEDULED"})).text
        )
        processing = ROW_ID.findall(
            (await ui.client.get("/ui/callbacks", params={"state": "PROCESSING"})).text
        )
        completed = ROW_ID.findall(
            (await ui.client.get("/ui/callbacks", params={"state": "COMPLETED"})).text
        )
        ids = [*scheduled[:2], *processing, *completed, "no-such-callback"]
        answer = await ui.client.post(
            "/ui/callbacks/cancel",
            data={"ids": ids, "csrf_token": await ui.csrf(), "back": "state=SCHEDULED&x=1"},
        )
        assert answer.status_code == 200, answer.text
        text = answer.text  # the confirmation: nothing cancelled yet
        assert "Cancel 4 callbacks?" in text and "1 of the selected callback no longer" in text
        assert "+14155550999" not in text and "+14*******99" in text and "sales" in text
        assert set(re.findall(r'type="hidden" name="ids" value="([^"]+)"', text)) == set(ids[:4])
        assert 'name="back" value="state=SCHEDULED"' in text  # the filters, nothing else
        assert len(ROW_ID.findall((await ui.client.get("/ui/callbacks")).text)) == 11
        done = await ui.client.post(
            "/ui/callbacks/cancel/confirm",
            data={"ids": ids, "csrf_token": await ui.csrf(), "back": "state=SCHEDULED"},
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == (
            "/ui/callbacks?state=SCHEDULED&cancelled=2&skipped=2&missing=1"
        )
        after = await ui.client.get(done.headers["location"])
        assert "Cancelled 2 callbacks; skipped 2 already final or being handled; 1 not found." in (
            after.text
        )
        assert len(ROW_ID.findall(after.text)) == 7
        many = await ui.client.post(
            "/ui/callbacks/cancel", data={"ids": scheduled, "csrf_token": await ui.csrf()}
        )
        assert "Cancel 9 callbacks?" in many.text and "more</p>" not in many.text
        monkeypatch.setattr(callbacks_list, "CONFIRM_SHOWN", 5)
        many = await ui.client.post(
            "/ui/callbacks/cancel", data={"ids": scheduled, "csrf_token": await ui.csrf()}
        )
        assert '<p class="muted" id="bc-more">and 4 more</p>' in many.text
        assert len(re.findall(r'type="hidden" name="ids"', many.text)) == 9
        bogus = await ui.client.get("/ui/callbacks", params={"cancelled": "<b>"})
        assert bogus.status_code == 200 and 'id="cb-outcome"' not in bogus.text
        empty = await ui.client.post("/ui/callbacks/cancel", data={"csrf_token": await ui.csrf()})
        assert empty.status_code == 400 and "ids: select at least one callback" in empty.text
        too_many = await ui.client.post(
            "/ui/callbacks/cancel",
            data={"ids": [f"id-{i}" for i in range(251)], "csrf_token": await ui.csrf()},
        )
        assert too_many.status_code == 400 and "at most 250" in too_many.text
    # The confirm changed state and is audited; the previews (a POST for the ids) are reads.
    actions = [r.action for r in await audit_rows(rt)]
    assert actions.count("ui.bulk_cancel_confirmed") == 1
    assert "ui.bulk_cancel_callbacks" not in actions


async def test_a_monitor_has_no_bulk_cancel_and_its_forged_post_is_refused(rt: Container) -> None:
    target = (await _ids_of(rt, "acme", "SCHEDULED"))[0]
    async with await signed_in(rt, "sam") as sam:
        for path in ("/ui/callbacks/cancel", "/ui/callbacks/cancel/confirm"):
            no_token = await sam.client.post(path, data={"ids": [target]})
            assert no_token.status_code == 403 and "CSRF" in no_token.text
    async with await signed_in(rt, "mona") as mona:
        page = await mona.client.get("/ui/callbacks")
        assert page.status_code == 200
        assert 'name="ids"' not in page.text and "Cancel selected" not in page.text
        assert "Export CSV" not in page.text
        forged = await mona.client.post(
            "/ui/callbacks/cancel", data={"ids": [target], "csrf_token": await mona.csrf()}
        )
        assert forged.status_code == 403 and "callbacks.write" in forged.text
        confirmed = await mona.client.post(
            "/ui/callbacks/cancel/confirm",
            data={"ids": [target], "csrf_token": await mona.csrf()},
        )
        assert confirmed.status_code == 403 and "callbacks.write" in confirmed.text
        export = await mona.client.get("/ui/callbacks/export.csv")
        assert export.status_code == 403 and "callbacks.export" in export.text
    assert target in await _ids_of(rt, "acme", "SCHEDULED")  # nothing was cancelled
    audited = [(r.action, r.outcome) for r in await audit_rows(rt) if r.action.startswith("ui.")]
    # sam's post without a token and mona's, both refused; the refused previews are reads.
    assert audited == [("ui.bulk_cancel_confirmed", "denied")] * 2


async def test_the_export_is_the_filtered_set_masked_in_utc(rt: Container) -> None:
    async with await signed_in(rt, "sam") as ui:
        answer = await ui.client.get("/ui/callbacks/export.csv", params={"phone": "+14155550123"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert len(rows) == 6
        assert {r["phoneNumberMasked"] for r in rows} == {"+14*******23"}
        assert "+14155550123" not in answer.text and "userData" not in answer.text
        assert all(r["createdTime"].endswith("Z") for r in rows)
        assert [r["tenant"] for r in rows] == ["acme"] * 2 + ["beta"] * 4
        bad = await ui.client.get("/ui/callbacks/export.csv", params={"due_to": "soon"})
        assert bad.status_code == 400 and "Due to: not a date and time" in bad.text


def _admin_api(rt: Container) -> httpx.AsyncClient:
    """A client of the admin API as the admin token."""
    from dialback.app import create_internal_app

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_internal_app(rt)),
        base_url="http://internal",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    )


async def _park_one(rt: Container, reason: str) -> str:
    """Set one SCHEDULED callback aside as the monitor does; its id."""
    async with rt.engine.begin() as conn:
        row = (
            await conn.execute(
                sa.select(callbacks.c.id, callbacks.c.tenant_id)
                .where(callbacks.c.state == "SCHEDULED")
                .limit(1)
            )
        ).one()
        await conn.execute(
            parked_callbacks.insert().values(
                callback_id=row.id, tenant_id=row.tenant_id, parked_at=time.time(), reason=reason
            )
        )
    return str(row.id)


async def test_the_parked_filter_shows_only_the_parked_with_their_reason(rt: Container) -> None:
    parked_id = await _park_one(rt, "unreadable user data")
    async with await signed_in(rt, "sam") as ui:
        only = await ui.client.get("/ui/callbacks", params={"parked": "only"})
        assert only.status_code == 200, only.text
        assert ROW_ID.findall(only.text) == [parked_id]
        assert 'title="Parked: unreadable user data">parked</span>' in only.text
        assert '<option value="only" selected>' in only.text
        none = await ui.client.get("/ui/callbacks", params={"parked": "none"})
        assert len(ROW_ID.findall(none.text)) == 10 and parked_id not in none.text
    async with _admin_api(rt) as api:
        found = await api.get("/admin/v1/callbacks", params={"parked": "true"})
        assert [i["id"] for i in found.json()["data"]["items"]] == [parked_id]
        export = await api.get("/admin/v1/callbacks/export", params={"parked": "true"})
        assert [r["id"] for r in csv.DictReader(io.StringIO(export.text))] == [parked_id]
        bad = await api.get("/admin/v1/callbacks/export", params={"dueFrom": "soon"})
        assert bad.status_code == 400 and "dueFrom" in bad.json()["status"]["message"]
        assert bad.json()["status"]["corrId"]


async def test_the_admin_api_bulk_cancel_export_and_phone_search(rt: Container) -> None:
    async with _admin_api(rt) as api:
        found = await api.get("/admin/v1/callbacks", params={"phoneNumber": "+1 415 555 0123"})
        assert found.status_code == 200 and found.json()["data"]["total"] == 6
        bad = await api.get("/admin/v1/callbacks", params={"phoneNumber": "12"})
        assert bad.status_code == 400 and "phoneNumber" in bad.json()["status"]["message"]
        ids = [i["id"] for i in found.json()["data"]["items"]]
        done = await api.post("/admin/v1/callbacks/cancel", json={"ids": [*ids[:3], "nope"]})
        assert done.status_code == 200, done.text
        data = done.json()["data"]
        assert data["cancelled"] == ids[:3]
        assert data["refused"] == [
            {"id": "nope", "state": None, "reason": "not found (or not in your tenants)"}
        ]
        twice = await api.post("/admin/v1/callbacks/cancel", json={"ids": ["x"] * 300})
        assert twice.status_code == 200  # the same id asked many times counts once
        assert len(twice.json()["data"]["refused"]) == 1
        over = await api.post(
            "/admin/v1/callbacks/cancel", json={"ids": [f"x{i}" for i in range(251)]}
        )
        assert over.status_code == 400 and "at most 250" in over.json()["status"]["message"]
        export = await api.get("/admin/v1/callbacks/export", params={"state": "COMPLETED"})
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert len(rows) == 4 and {r["callbackReason"] for r in rows} == {"handled", "cancelled"}


async def test_past_the_count_cap_the_list_says_more_and_pages_on(
    rt: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matches are counted up to ``COUNT_CAP``: past it the admin API says ``totalExact``
    false and the UI "More than N", with a next page for as long as pages are full."""
    monkeypatch.setattr(repository, "COUNT_CAP", 4)
    monkeypatch.setattr(callbacks_list, "PAGE_SIZE", 3)
    async with _admin_api(rt) as api:
        capped = (await api.get("/admin/v1/callbacks", params={"limit": 3})).json()["data"]
        assert (capped["total"], capped["totalExact"], len(capped["items"])) == (4, False, 3)
        beta = (await api.get("/admin/v1/callbacks", params={"tenant": "beta"})).json()["data"]
        assert (beta["total"], beta["totalExact"], len(beta["items"])) == (4, True, 4)
    async with await signed_in(rt, "sam") as ui:
        first = await ui.client.get("/ui/callbacks")
        assert first.status_code == 200, first.text
        assert "More than 4 callbacks, page 1</p>" in first.text
        assert 'rel="next" href="/ui/callbacks?page=2"' in first.text
        last = await ui.client.get("/ui/callbacks", params={"page": "4"})  # 11 callbacks
        assert len(ROW_ID.findall(last.text)) == 2 and 'rel="next"' not in last.text
        assert 'rel="prev"' in last.text and "Page 4 (3 a page)" in last.text
        exact = await ui.client.get("/ui/callbacks", params={"tenant": "beta"})
        assert "4 callbacks, page 1 of 2</p>" in exact.text
        # Counts per state stop past the cap too: acme+beta have 9 SCHEDULED, 1 PROCESSING.
        counts = await ui.client.get("/ui/callbacks/counts")
        assert counts.status_code == 200, counts.text
        shown = re.findall(
            r'data-state="(\w+)">.*?<span class="cb-count">([^<]+)</span>', counts.text
        )
        assert dict(shown) == {
            "SCHEDULED": "4+",
            "QUEUED": "0",
            "ROUTING": "0",
            "PROCESSING": "1",
            "COMPLETED": "1",
        }

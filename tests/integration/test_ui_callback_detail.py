"""A callback's page and the Create form over httpx (the fast cases): who may act, CSRF, bad
input named per field, tenant scope, the number check endpoint, recreate through create's
rules, and the UI create's trace-level story (GES's 16 lines) with the UI request's corrId."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from dialback.app import create_internal_app
from dialback.callbacks.repository import CallbackFilter
from dialback.container import Container
from dialback.db.schema import callbacks
from dialback.identity.roles import Role
from dialback.ui.pages.callbacks_detail import timeline
from tests.support.factories import add_tenant, book, next_slot
from tests.support.stack import ADMIN_TOKEN, make_settings, wait_for
from tests.support.ui_client import PASSWORD, Ui

ID_RE = re.compile(r"/ui/callbacks/([0-9a-f-]{36})")


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Container]:
    c = Container(
        make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/ui.db",
            data_dir=str(tmp_path),
            simulator="off",
        )
    )
    await c.start()
    await add_tenant(c, "acme")
    await add_tenant(c, "globex")
    await c.users.add("mona", frozenset({Role.MONITOR}), password=PASSWORD)
    await c.users.add("sam", frozenset({Role.SUPERVISOR}), password=PASSWORD)
    await c.users.add("gus", frozenset({Role.SUPERVISOR}), frozenset({"globex"}), password=PASSWORD)
    try:
        yield c
    finally:
        await c.stop()


async def signed_in(rt: Container, user: str) -> Ui:
    ui = Ui(rt)
    r = await ui.sign_in(user)
    assert r.status_code == 303, r.text
    return ui


async def test_monitor_sees_no_actions_and_its_forged_posts_get_403(rt: Container) -> None:
    cid = await book(rt, "acme", "+14155550101", next_slot())
    async with await signed_in(rt, "mona") as ui:
        page = await ui.client.get(f"/ui/callbacks/{cid}")
        assert page.status_code == 200
        assert "hidden for your role" in page.text
        assert "Cancel callback" not in page.text and "Recreate" not in page.text
        assert f"/callbacks/{cid}/reschedule" not in page.text
        token = await ui.csrf()
        for action in ("cancel", "recreate", "reschedule"):
            r = await ui.client.post(
                f"/ui/callbacks/{cid}/{action}",
                data={"csrf_token": token, "slot": "2030-01-01T10:00:00Z"},
            )
            assert r.status_code == 403, (action, r.text)
            assert "callbacks.write" in r.text
        for path in ("/ui/callbacks/new", f"/ui/callbacks/{cid}/reschedule"):
            assert (await ui.client.get(path)).status_code == 403
        r = await ui.client.post("/ui/callbacks/new", data={"csrf_token": token})
        assert r.status_code == 403
    detail = await rt.callbacks.detail(cid)
    assert detail.row.state == "SCHEDULED"


async def test_supervisor_sees_everything_cancels_and_a_second_cancel_is_shown(
    rt: Container,
) -> None:
    cid = await book(rt, "acme", "+14155550103", next_slot())
    async with await signed_in(rt, "sam") as ui:
        page = await ui.client.get(f"/ui/callbacks/{cid}")
        assert page.status_code == 200
        for text in ("+14155550103", "acme", "sales", "inboundVQ", "routePoint", "Timeline"):
            assert text in page.text, text
        assert "<code>k</code>" in page.text and "hidden for your role" not in page.text
        # Without the session's CSRF token every action is refused, and nothing changes.
        for path in (
            f"/ui/callbacks/{cid}/cancel",
            f"/ui/callbacks/{cid}/recreate",
            f"/ui/callbacks/{cid}/reschedule",
            "/ui/callbacks/new",
        ):
            r = await ui.client.post(path, data={"tenant": "acme", "service": "sales"})
            assert r.status_code == 403 and "CSRF token is missing" in r.text, (path, r.text)
        assert (await rt.callbacks.detail(cid)).row.state == "SCHEDULED"
        assert (await rt.callbacks.search(None, CallbackFilter(), limit=10, offset=0)).total == 1
        token = await ui.csrf()
        r = await ui.client.post(f"/ui/callbacks/{cid}/cancel", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"].endswith(f"{cid}?done=cancelled")
        page = await ui.client.get(r.headers["location"])
        assert "Cancelled." in page.text
        # The timeline: the cancel by sam (from the audit), with its corrId.
        rows = re.findall(r"<tr class=\"tl-(\w+)\">(.*?)</tr>", page.text, re.S)
        kinds = [k for k, _ in rows]
        assert kinds[0] == "created" and "state" in kinds and "audit" in kinds
        state_rows = [body for k, body in rows if k == "state" and "COMPLETED" in body]
        assert state_rows and "local:sam" in state_rows[-1] and "cancelled" in state_rows[-1]
        assert re.search(r"<code>[0-9a-f-]{36}</code>", state_rows[-1])
        again = await ui.client.post(f"/ui/callbacks/{cid}/cancel", data={"csrf_token": token})
        assert again.status_code == 409
        assert "Conflict:" in again.text and "Callback" in again.text  # its page, not a 500


async def test_a_queued_callback_shows_its_position_and_wait(rt: Container) -> None:
    cid = await book(rt, "acme", "+14155550115")  # immediate: the monitor queues it

    async def queued() -> bool:
        return (await rt.callbacks.detail(cid)).row.state == "QUEUED"

    await wait_for(queued, timeout=10)
    async with await signed_in(rt, "mona") as ui:
        page = await ui.client.get(f"/ui/callbacks/{cid}")
        assert re.search(r"<dt>Position in queue</dt><dd>1</dd>", page.text), page.text
        assert "<dt>Estimated wait</dt><dd>unknown</dd>" in page.text
        # The monitor's dispatch is in its timeline.
        assert "SCHEDULED → QUEUED" in page.text and "<td>monitor</td>" in page.text


async def test_scoped_supervisor_gets_404_for_another_tenants_callback(rt: Container) -> None:
    theirs = await book(rt, "acme", "+14155550104", next_slot())
    mine = await book(rt, "globex", "+14155550105", next_slot())
    async with await signed_in(rt, "gus") as ui:
        assert (await ui.client.get(f"/ui/callbacks/{mine}")).status_code == 200
        token = await ui.csrf()
        assert (await ui.client.get(f"/ui/callbacks/{theirs}")).status_code == 404
        assert (await ui.client.get(f"/ui/callbacks/{theirs}/reschedule")).status_code == 404
        for action in ("cancel", "recreate"):
            r = await ui.client.post(f"/ui/callbacks/{theirs}/{action}", data={"csrf_token": token})
            assert r.status_code == 404, action
        r = await ui.client.post(
            f"/ui/callbacks/{theirs}/reschedule",
            data={"csrf_token": token, "slot": time.strftime("%Y-%m-%dT%H:00:00Z")},
        )
        assert r.status_code == 404
        # The form offers only its own tenant; booking for another is refused, field named.
        form = await ui.client.get("/ui/callbacks/new")
        assert "globex" in form.text and "acme" not in form.text
        r = await ui.client.post(
            "/ui/callbacks/new",
            data={
                "csrf_token": token,
                "tenant": "acme",
                "service": "sales",
                "phone": "+14155550106",
            },
        )
        assert r.status_code == 400 and "no tenant named &#39;acme&#39;" in r.text
        v = await ui.client.get(
            "/ui/callbacks/validate-number",
            params={"tenant": "acme", "service": "sales", "phone": "+14155550106"},
        )
        assert v.json()["ok"] is False
    assert (await rt.callbacks.detail(theirs)).row.state == "SCHEDULED"


async def test_number_check_endpoint(rt: Container) -> None:
    async with await signed_in(rt, "sam") as ui:
        # An operator of several tenants picks the tenant; the services are that tenant's.
        form = await ui.client.get("/ui/callbacks/new", params={"tenant": "globex"})
        picker = re.search(r'<select id="pick-tenant".*?</select>', form.text, re.S)
        assert picker and "acme" in picker.group(0)
        assert '<option value="globex" selected>' in picker.group(0)
        assert '<input type="hidden" name="tenant" value="globex">' in form.text
        q = {"tenant": "acme", "service": "sales"}
        ok = await ui.client.get(
            "/ui/callbacks/validate-number", params={**q, "phone": "415 555 0107"}
        )
        assert ok.json() == {
            "ok": True,
            "message": "valid: +14155550107",
            "normalised": "+14155550107",
        }
        bad = await ui.client.get("/ui/callbacks/validate-number", params={**q, "phone": "12"})
        assert bad.json()["ok"] is False and bad.json()["message"]
        blocked = await ui.client.get(
            "/ui/callbacks/validate-number", params={**q, "phone": "+1 900 555 0100"}
        )
        assert blocked.json()["ok"] is False
        other = await ui.client.get(
            "/ui/callbacks/validate-number", params={**q, "service": "nope", "phone": "4155550107"}
        )
        assert other.json() == {
            "ok": False,
            "message": "no service named 'nope'",
            "normalised": None,
        }


async def test_bad_create_input_is_a_400_naming_the_field(rt: Container) -> None:
    async with await signed_in(rt, "sam") as ui:
        token = await ui.csrf()
        base = {"csrf_token": token, "tenant": "acme", "service": "sales"}
        cases = [
            ({"phone": "not a number"}, "phone-error", "not a phone number"),
            ({"phone": "+14155550108", "when": "yesterday"}, "when-error", "not a time"),
            (
                {"phone": "+14155550108", "ud_key": "1bad", "ud_value": "x"},
                "ud-error",
                "not an identifier",
            ),
            ({"phone": "+14155550108", "service": "nope"}, "service-error", "no service named"),
        ]
        for fields, error_id, text in cases:
            r = await ui.client.post("/ui/callbacks/new", data={**base, **fields})
            assert r.status_code == 400, (fields, r.text)
            assert f'id="{error_id}"' in r.text, (fields, r.text)
            assert text in r.text, (fields, r.text)
            assert 'value="+14155550108"' in r.text or fields["phone"] == "not a number"
        # A full slot: 429 on the form with the field named and free slots proposed.
        at = next_slot(3)
        await book(rt, "acme", "+14155550109", at)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        r = await ui.client.post(
            "/ui/callbacks/new", data={**base, "phone": "+14155550110", "when": when}
        )
        assert r.status_code == 429 and 'id="when-error"' in r.text and "is full" in r.text
        assert "Pick a free slot below" in r.text


async def test_reschedule_picker_full_slot_and_errors(rt: Container) -> None:
    full_at = next_slot(3)
    await book(rt, "acme", "+14155550111", full_at)
    cid = await book(rt, "acme", "+14155550112", next_slot(2))
    full = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(full_at))
    free_at = next_slot(4)
    free = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(free_at))
    async with await signed_in(rt, "sam") as ui:
        picker = await ui.client.get(f"/ui/callbacks/{cid}/reschedule")
        assert picker.status_code == 200
        radio = re.search(rf'<input type="radio"[^>]*value="{full}"[^>]*>', picker.text)
        assert radio and "disabled" in radio.group(0)
        assert re.search(
            rf'value="{full}" disabled>\s*<time[^>]*>[^<]*</time>\s*'
            r'<span class="slot-cap">full</span>',
            picker.text,
        )
        token = await ui.csrf()
        r = await ui.client.post(f"/ui/callbacks/{cid}/reschedule", data={"csrf_token": token})
        assert r.status_code == 400 and "slot: choose a slot" in r.text
        forged = await ui.client.post(
            f"/ui/callbacks/{cid}/reschedule", data={"csrf_token": token, "slot": full}
        )
        assert forged.status_code == 429 and "is full" in forged.text
        assert "Free slots nearby" in forged.text
        ok = await ui.client.post(
            f"/ui/callbacks/{cid}/reschedule", data={"csrf_token": token, "slot": free}
        )
        assert ok.status_code == 303
    assert (await rt.callbacks.detail(cid)).row.due_at == free_at


async def test_recreate_books_through_create_with_its_rules(rt: Container) -> None:
    cid = await book(rt, "acme", "+14155550113", next_slot())
    async with await signed_in(rt, "sam") as ui:
        token = await ui.csrf()
        r = await ui.client.post(f"/ui/callbacks/{cid}/recreate", data={"csrf_token": token})
        assert r.status_code == 303
        new = ID_RE.search(r.headers["location"])
        assert new and new.group(1) != cid
        d = await rt.callbacks.detail(new.group(1))
        assert d.row.phone_number == "+14155550113" and d.row.user_data == {"k": "v"}
        assert d.row.desired_time is None  # recreated immediate
        # The number now has 2 open callbacks (the service's maxOpenPerNumber): the next
        # recreate is refused by create's own rule, shown on the page.
        again = await ui.client.post(f"/ui/callbacks/{cid}/recreate", data={"csrf_token": token})
        assert again.status_code == 429 and "open callbacks" in again.text
        # A row stored under older rules that create refuses today: 409 on its page, no 500.
        old = await book(rt, "acme", "+14155550114")
        async with rt.engine.begin() as conn:
            await conn.execute(
                callbacks.update()
                .where(callbacks.c.id == old)
                .values(params={"offerTiming": "SOMETIMES"})
            )
        r = await ui.client.post(f"/ui/callbacks/{old}/recreate", data={"csrf_token": token})
        assert r.status_code == 409 and "offerTiming: the stored value is refused" in r.text


# The UI create's story at trace level: the same 16 lines as an API create
# (tests/integration/test_logging.py, docs/logging.md), the request's 10 with the UI's corrId.
REQUEST_LINES = 10
DISPATCH_LINES = 3
OUTCOME_LINES = 3


async def test_a_ui_create_writes_the_same_16_line_story_with_the_ui_corr_id(
    tmp_path: Path, captured_logs: Callable[[], list[dict]]
) -> None:
    rt = Container(
        make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/story.db", data_dir=str(tmp_path)
        )
    )
    await rt.start()
    try:
        await add_tenant(rt, "acme")
        await rt.users.add("sam", frozenset({Role.SUPERVISOR}), password=PASSWORD)
        async with await signed_in(rt, "sam") as ui:
            token = await ui.csrf()
            r = await ui.client.post(
                "/ui/callbacks/new",
                data={
                    "csrf_token": token,
                    "tenant": "acme",
                    "service": "sales",
                    "phone": "+1 415 555 0199",
                    "when": "asap",
                    "ud_key": "ssn",
                    "ud_value": "SSN-123-45-6789",
                },
            )
            assert r.status_code == 303, r.text
            found = ID_RE.search(r.headers["location"])
            assert found
            cid = found.group(1)

            async def outcomes_logged() -> bool:
                return (
                    sum(
                        1
                        for ln in captured_logs()
                        if ln.get("callbackId") == cid
                        and ln["logger"] == "dialback.monitor"
                        and ln["level"] == "debug"
                    )
                    >= OUTCOME_LINES
                )

            await wait_for(outcomes_logged, timeout=15)
            made = await rt.callbacks.detail(cid)
    finally:
        await rt.stop()
    # The UI request's own corrId (a browser sends none): its request line's.
    posted = [
        ln
        for ln in captured_logs()
        if ln["logger"] == "dialback.request" and "POST /ui/callbacks/new" in ln["msg"]
    ]
    assert len(posted) == 1, posted
    corr = posted[0]["corrId"]
    lines = captured_logs()
    request = [ln for ln in lines if ln.get("corrId") == corr]
    story = [ln for ln in request if ln["logger"] in ("dialback.callbacks", "dialback.request")]
    assert len(story) == REQUEST_LINES, [ln["msg"] for ln in request]
    assert all(ln["tenant"] == "acme" for ln in story)
    assert story[0]["msg"] == "create callback: request accepted for validation"
    assert story[-1]["logger"] == "dialback.request" and story[-1]["status"] == 303
    assert {ln["callbackId"] for ln in story[-3:]} == {cid}
    # The timeline's creation row: the operator by name, with the request's corrId.
    [created] = [t for t in timeline(made) if t.kind == "created"]
    assert (created.actor, created.corr_id) == ("local:sam", corr)
    later = [ln for ln in lines if ln.get("callbackId") == cid and ln.get("corrId") != corr]
    dispatch = [ln for ln in later if ln["msg"].startswith("monitor:")]
    outcomes = [ln for ln in later if ln["level"] == "debug" and ln["logger"] == "dialback.monitor"]
    assert len(dispatch) == DISPATCH_LINES and len(outcomes) == OUTCOME_LINES
    for ln in lines:
        text = json.dumps(ln)
        assert "4155550199" not in text and "555 0199" not in text, text
        assert "SSN-123" not in text, text


async def test_admin_api_recreate_at_a_time_and_into_a_full_slot(rt: Container) -> None:
    cid = await book(rt, "acme", "+14155550120", next_slot(2))
    await rt.callbacks.admin_cancel(cid)  # a cancelled callback may be recreated too
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    slot = next_slot(4)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(slot))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_internal_app(rt)), base_url="http://internal"
    ) as admin:
        r = await admin.post(
            f"/admin/v1/callbacks/{cid}/recreate", headers=headers, json={"desiredTime": at}
        )
        assert r.status_code == 200, r.text
        new = r.json()["data"]["id"]
        d = await rt.callbacks.detail(new)
        assert d.row.desired_time == slot and d.row.user_data == {"k": "v"}
        # That slot's one place is now taken: a second recreate into it is refused as create
        # refuses it, with the free slots proposed.
        full = await admin.post(
            f"/admin/v1/callbacks/{cid}/recreate", headers=headers, json={"desiredTime": at}
        )
        assert full.status_code == 429 and full.json()["data"]["slots"], full.text
        r = await admin.post(
            f"/admin/v1/callbacks/{cid}/recreate", headers=headers, json={"desiredTime": "soon"}
        )
        assert r.status_code == 400 and "desiredTime" in r.text

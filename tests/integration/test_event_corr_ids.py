"""Every state change of a callback carries the corrId of the request or monitor step that made
it (migration 12): an API create and cancel each their request's, a monitor dispatch batch,
outcome and deadline sweep each the corrId of their own log lines; the Callback UI's timeline
links each to the Developer page, whose lookup lists the changes a corrId made within the
operator's tenants. On PostgreSQL (the booking function) and on the embedded SQLite store."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dialback.container import Container
from dialback.db.migrations import migrate
from dialback.db.schema import callback_events
from dialback.identity.roles import Role
from dialback.kit.timefmt import utc_iso
from dialback.routing.messages import Outcome
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.stack import SettingsFactory, Stack, make_settings, started_stack, wait_for
from tests.support.ui_client import PASSWORD, Ui

V3 = "/engagement/v3/callbacks"
A = "/admin/v1"


@pytest.fixture
async def stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """dialback without a simulator on either store (SQLite: embedded, no Redis)."""
    settings = make_settings(database_url=database_url, data_dir=str(tmp_path), simulator="off")
    async with started_stack(settings) as s:
        yield s


async def create(stack: Stack, key: str, corr: str | None = None, **fields: Any) -> tuple[str, str]:
    """Book a callback an hour ahead; (its id, the request's corrId)."""
    body = {
        "serviceName": "sales",
        "phoneNumber": "+1 415 555 0100",
        "desiredTime": utc_iso(time.time() + 3600),
        **fields,
    }
    headers = {"x-api-key": key, **({"x-correlation-id": corr} if corr else {})}
    r = await stack.public.post(f"{V3}/create", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["corrId"] == r.headers["x-correlation-id"]
    return r.json()["data"]["id"], r.headers["x-correlation-id"]


async def detail(stack: Stack, cid: str) -> dict[str, Any]:
    r = await stack.internal.get(f"{A}/callbacks/{cid}")
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


async def test_an_api_create_then_cancel_record_each_requests_corr_id(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cid, created_by = await create(stack, key)
    # A client's own corrId may be 128 characters; the stores keep its first 64.
    long_corr = "client-cancel-" + "x" * 100
    r = await stack.public.post(
        f"{V3}/cancel", json={"id": cid}, headers={"x-api-key": key, "x-correlation-id": long_corr}
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-correlation-id"] == long_corr  # echoed whole
    d = await detail(stack, cid)
    assert [(h["fromState"], h["toState"], h["source"], h["corrId"]) for h in d["history"]] == [
        (None, "SCHEDULED", "api", created_by),
        ("SCHEDULED", "COMPLETED", "api", long_corr[:64]),
    ]
    assert [(t["kind"], t["corrId"]) for t in d["timeline"]] == [
        ("created", created_by),
        ("state", long_corr[:64]),
    ]
    assert created_by != long_corr[:64]


async def test_an_admin_reschedule_records_its_corr_id(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cid, _ = await create(stack, key)
    r = await stack.internal.post(
        f"{A}/callbacks/{cid}/reschedule",
        json={"desiredTime": utc_iso(time.time() + 7200)},
        headers={"x-correlation-id": "ops-move-1"},
    )
    assert r.status_code == 200, r.text
    last = r.json()["data"]["history"][-1]
    assert (last["reason"], last["source"], last["corrId"]) == (
        "rescheduled",
        "admin",
        "ops-move-1",
    )


async def test_a_long_corr_id_finds_the_audit_entry_and_the_change_it_cut(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cid, _ = await create(stack, key)
    long_corr = "ops-" + "z" * 120  # 124 characters: the edge admits it, the stores keep 64
    r = await stack.internal.post(
        f"{A}/callbacks/{cid}/cancel", headers={"x-correlation-id": long_corr}
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["history"][-1]["corrId"] == long_corr[:64]
    found = await stack.internal.get(f"{A}/audit", params={"corrId": long_corr})
    assert found.status_code == 200, found.text
    [entry] = found.json()["data"]["items"]
    assert (entry["action"], entry["corrId"]) == ("admin.cancel_callback", long_corr[:64])


def _lines(logs: list[dict[str, Any]], cid: str, msg: str) -> list[dict[str, Any]]:
    return [ln for ln in logs if ln.get("callbackId") == cid and ln["msg"].startswith(msg)]


async def _events(rt: Container, cid: str) -> list[tuple[str | None, str, str | None]]:
    ev = callback_events.c
    async with rt.engine.connect() as conn:
        q = sa.select(ev.from_state, ev.to_state, ev.corr_id).where(ev.callback_id == cid)
        return [tuple(r) for r in await conn.execute(q.order_by(ev.id))]


async def test_monitor_steps_record_the_corr_id_of_their_log_lines(
    database_url: str,
    settings_with: SettingsFactory,
    captured_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    settings = settings_with(
        database_url=database_url,
        simulator="off",
        routing_timeout_seconds=1.0,
        deadline_sweep_seconds=0.1,
    )
    rt = Container(settings)
    await migrate(rt.engine)  # SQLite: a new file (PostgreSQL: the migrated template)
    tenant_id, service_id = await tenant_and_service(rt.engine)
    ids = await insert_due_callbacks(rt.engine, tenant_id, service_id, 3)
    await rt.start()
    try:

        async def all_queued() -> bool:
            return [len(await _events(rt, cid)) for cid in ids] == [1, 1, 1]

        await wait_for(all_queued)
        logs = captured_logs()
        dispatch_corr = set()
        for cid in ids:
            [(frm, to, corr)] = await _events(rt, cid)
            assert (frm, to) == ("SCHEDULED", "QUEUED") and corr
            steps = [
                _lines(logs, cid, f"monitor: {m}")
                for m in (
                    "claimed due callback",
                    "published to the routing stream",
                    "callback QUEUED",
                )
            ]
            assert [len(s) for s in steps] == [1, 1, 1]
            assert {s[0]["corrId"] for s in steps} == {corr}
            dispatch_corr.add(corr)

        # The routing engine's corrId when its outcome carries one, the read's own otherwise.
        now = time.time()
        await rt.transport.emit_outcome(Outcome(ids[0], 1, "ROUTING", None, now, "router-7"))
        await rt.transport.emit_outcome(Outcome(ids[1], 1, "ROUTING", None, now))

        async def routed() -> bool:
            return [len(await _events(rt, cid)) for cid in ids[:2]] == [2, 2]

        await wait_for(routed)
        logs = captured_logs()
        for cid, expected in ((ids[0], "router-7"), (ids[1], None)):
            (_, to, corr) = (await _events(rt, cid))[1]
            assert to == "ROUTING" and corr and corr not in dispatch_corr
            if expected:
                assert corr == expected
            [line] = _lines(logs, cid, "callback QUEUED -> ROUTING")
            assert line["corrId"] == corr

        # The deadline sweep ends both ROUTING attempts after 1 s, under the sweep's corrId.
        async def swept() -> bool:
            return [len(await _events(rt, cid)) for cid in ids[:2]] == [3, 3]

        await wait_for(swept, timeout=10)
        logs = captured_logs()
        for cid in ids[:2]:
            (frm, to, corr) = (await _events(rt, cid))[2]
            assert (frm, to) == ("ROUTING", "COMPLETED") and corr
            [line] = _lines(logs, cid, "ROUTING attempt 1 outlived its deadline")
            assert line["corrId"] == corr
            assert corr not in dispatch_corr and corr != "router-7"
    finally:
        await rt.stop()


async def _signed_in(rt: Container, user: str, role: Role, tenants: frozenset[str] | None) -> Ui:
    await rt.users.add(user, frozenset({role}), tenants, password=PASSWORD)
    ui = Ui(rt)
    r = await ui.sign_in(user)
    assert r.status_code == 303, r.text
    return ui


async def test_the_timeline_links_each_corr_id_to_the_developer_lookup(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cid, created_by = await create(stack, key)
    cancel = await stack.internal.post(
        f"{A}/callbacks/{cid}/cancel", headers={"x-correlation-id": "ops-cancel:9"}
    )
    assert cancel.status_code == 200, cancel.text
    link = 'href="/ui/developer?corrId={}"'
    async with await _signed_in(stack.rt, "dev", Role.DEVELOPER, None) as ui:
        page = await ui.client.get(f"/ui/callbacks/{cid}")
        assert page.status_code == 200
        timeline = page.text[page.text.index('id="tl-title"') :]
        assert link.format(created_by) in timeline
        assert link.format("ops-cancel%3A9") in timeline
    # A Supervisor may not look up: the corrIds shown, not linked.
    async with await _signed_in(stack.rt, "sam", Role.SUPERVISOR, None) as ui:
        page = await ui.client.get(f"/ui/callbacks/{cid}")
        assert page.status_code == 200
        assert f"<code>{created_by}</code>" in page.text
        assert "/ui/developer?corrId=" not in page.text


async def test_the_developer_lookup_lists_a_corr_ids_changes_within_the_operators_tenants(
    stack: Stack,
) -> None:
    acme, globex = await stack.tenant("acme"), await stack.tenant("globex")
    shared = "shared-" + uuid.uuid4().hex + "-" + "y" * 60  # 99 characters: stored cut to 64
    mine, _ = await create(stack, acme, shared)
    theirs, _ = await create(stack, globex, shared)
    other, _ = await create(stack, acme, phoneNumber="+1 415 555 0101")

    async with await _signed_in(stack.rt, "ada", Role.ADMINISTRATOR, None) as ui:
        page = await ui.client.get("/ui/developer", params={"corrId": shared})
        assert page.status_code == 200, page.text
        assert "Callback state changes (2)" in page.text
        assert mine in page.text and theirs in page.text and other not in page.text
        assert "globex" in page.text
    async with await _signed_in(stack.rt, "tess", Role.DEVELOPER, frozenset({"acme"})) as ui:
        page = await ui.client.get("/ui/developer", params={"corrId": shared})
        assert page.status_code == 200, page.text
        assert "Callback state changes (1)" in page.text
        assert mine in page.text and theirs not in page.text and "globex" not in page.text
        none = await ui.client.get("/ui/developer", params={"corrId": "no-such-corr-1"})
        assert "data-no-events" in none.text
        bad = await ui.client.get("/ui/developer", params={"corrId": "x" * 129})
        assert bad.status_code == 400 and "corrId" in bad.text
    # Bounded: the first ``limit`` changes, and whether there are more.
    found = await stack.rt.callbacks.events_with_corr_id(shared, None, limit=1)
    assert [r.callback_id for r in found.rows] == [mine] and found.more
    found = await stack.rt.callbacks.events_with_corr_id(shared, frozenset({"globex"}), limit=1)
    assert [r.callback_id for r in found.rows] == [theirs] and not found.more

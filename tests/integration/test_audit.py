"""The audit log: every state-changing admin call and every refused credential, with who,
what, which object, when, from where and the corrId; read through GET /admin/v1/audit and in a
callback's timeline; never secret material."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from dialback.db.schema import audit_log
from tests.support.stack import SettingsFactory, Stack, started_stack

A = "/admin/v1"
SUP = "supervisor-token-audit-0001"
MON = "monitor-token-audit-000001"
ADM = "administrator-token-audit-1"
ACME_ADM = "acme-admin-token-audit-001"


@pytest.fixture
async def stack(settings_with: SettingsFactory) -> AsyncIterator[Stack]:
    tokens = f"sup:supervisor:{SUP},mon:monitor:{MON},root:administrator:{ADM},acme-root:administrator@acme:{ACME_ADM}"
    settings = settings_with(
        admin_tokens=tokens, simulator="off", monitor_enabled=False, trusted_proxies="127.0.0.1"
    )
    async with started_stack(settings) as s:
        yield s


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **extra}


async def book(stack: Stack, key: str, phone: str = "+1 415 555 0100") -> str:
    r = await stack.public.post(
        "/engagement/v3/callbacks/create",
        json={
            "serviceName": "sales",
            "phoneNumber": phone,
            "desiredTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 7200)),
        },
        headers={"x-api-key": key},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["data"]["id"])


async def entries(stack: Stack, **query: str) -> list[dict[str, Any]]:
    r = await stack.internal.get(f"{A}/audit", params=query, headers=auth(ADM))
    assert r.status_code == 200, r.text
    return list(r.json()["data"]["items"])


async def test_an_operator_action_is_audited_and_in_the_callbacks_timeline(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cb = await book(stack, key)
    r = await stack.internal.post(
        f"{A}/callbacks/{cb}/cancel", headers=auth(SUP, **{"x-forwarded-for": "203.0.113.7"})
    )
    assert r.status_code == 200, r.text
    [entry] = await entries(stack, callbackId=cb)
    assert entry["actor"] == "token:sup" and entry["actorKind"] == "token"
    assert entry["action"] == "admin.cancel_callback"
    assert (entry["objectType"], entry["objectId"]) == ("callback", cb)
    assert entry["tenant"] == "acme" and entry["outcome"] == "ok"
    assert entry["address"] == "203.0.113.7"
    assert entry["corrId"] == r.headers["x-correlation-id"]
    assert entry["detail"] == {
        "method": "POST",
        "route": "/admin/v1/callbacks/{callback_id}/cancel",
        "status": 200,
    }
    detail = (await stack.internal.get(f"{A}/callbacks/{cb}", headers=auth(MON))).json()["data"]
    kinds = [(t["kind"], t.get("toState") or t.get("action")) for t in detail["timeline"]]
    assert kinds == [
        ("created", "SCHEDULED"),
        ("state", "COMPLETED"),
        ("audit", "admin.cancel_callback"),
    ]
    audit_item = next(t for t in detail["timeline"] if t["kind"] == "audit")
    assert audit_item["actor"] == "token:sup" and audit_item["corrId"] == entry["corrId"]


async def test_a_tenant_patch_records_the_fields_it_changed_old_and_new(stack: Stack) -> None:
    await stack.tenant("acme")
    body = {
        "settings": {
            "throttle": {"maxCallbacks": 42, "windowSeconds": 60, "maxCallIns": 7_000_000},
            "retention": {"callbackDays": 9},
        },
        "disabled": True,
    }
    r = await stack.internal.patch(f"{A}/tenants/acme", json=body, headers=auth(ADM))
    assert r.status_code == 200, r.text
    same = await stack.internal.patch(f"{A}/tenants/acme", json=body, headers=auth(ADM))
    assert same.status_code == 200, same.text
    newest, first = await entries(stack, action="admin.patch_tenant")
    assert first["corrId"] == r.headers["x-correlation-id"]
    assert first["detail"]["changes"] == {
        "throttle.maxCallbacks": [500, 42],
        "throttle.maxCallIns": [None, 7_000_000],
        "retention.callbackDays": [None, 9],
        "disabled": [False, True],
    }
    assert "changes" not in newest["detail"]  # the same values again change nothing


async def test_refusals_are_audited_and_reads_are_not(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cb = await book(stack, key)
    assert (await stack.internal.get(f"{A}/callbacks/{cb}", headers=auth(MON))).status_code == 200
    denied = await stack.internal.post(f"{A}/callbacks/{cb}/cancel", headers=auth(MON))
    assert denied.status_code == 403
    wrong = "a-wrong-token-that-must-not-be-stored"
    refused = await stack.internal.get(f"{A}/tenants", headers=auth(wrong))
    assert refused.status_code == 401
    bad_body = await stack.internal.post(f"{A}/tenants", headers=auth(ADM), json={"name": ""})
    assert bad_body.status_code == 400

    log = await entries(stack)
    by_corr = {e["corrId"]: e for e in log}
    assert len(log) == 3, log  # the GET of the callback is not audited
    d = by_corr[denied.headers["x-correlation-id"]]
    assert (d["actor"], d["outcome"], d["action"]) == (
        "token:mon",
        "denied",
        "admin.cancel_callback",
    )
    assert "callbacks.write" in d["detail"]["message"] and d["callbackId"] == cb
    f = by_corr[refused.headers["x-correlation-id"]]
    assert (f["actor"], f["outcome"], f["action"]) == (
        "anonymous",
        "failed",
        "admin.authentication_failed",
    )
    b = by_corr[bad_body.headers["x-correlation-id"]]
    assert (b["actor"], b["outcome"], b["detail"]["status"]) == ("token:root", "failed", 400)

    async with stack.rt.engine.connect() as conn:
        dump = repr((await conn.execute(sa.select(audit_log))).all())
    for secret in (wrong, SUP, MON, ADM):
        assert secret not in dump


async def test_created_and_erased_objects_are_named(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cb = await book(stack, key)
    created = await stack.internal.post(f"{A}/tenants", headers=auth(ADM), json={"name": "gamma"})
    assert created.status_code == 201
    erased = await stack.internal.delete(f"{A}/callbacks/{cb}", headers=auth(ADM))
    assert erased.status_code == 200, erased.text
    [t] = await entries(stack, action="admin.create_tenant")
    assert (t["objectType"], t["objectId"], t["outcome"]) == ("tenant", "gamma", "ok")
    [e] = await entries(stack, action="admin.erase_callback")
    # The row is gone, its tenant was read before the call.
    assert (e["objectId"], e["tenant"], e["callbackId"]) == (cb, "acme", cb)


async def test_filters_paging_and_a_scoped_reader(stack: Stack) -> None:
    acme = await stack.tenant("acme")
    beta = await stack.tenant("beta")
    ids = [await book(stack, acme, f"+1 415 555 01{n:02d}") for n in range(3)]
    beta_cb = await book(stack, beta, "+1 415 555 0190")
    for cb in [*ids, beta_cb]:
        r = await stack.internal.post(f"{A}/callbacks/{cb}/cancel", headers=auth(SUP))
        assert r.status_code == 200
    first = await stack.internal.get(f"{A}/audit", params={"limit": 2}, headers=auth(ADM))
    page = first.json()["data"]
    assert page["total"] == 4 and len(page["items"]) == 2
    second = await stack.internal.get(
        f"{A}/audit", params={"limit": 2, "offset": 2}, headers=auth(ADM)
    )
    seen = [e["id"] for e in page["items"] + second.json()["data"]["items"]]
    assert len(set(seen)) == 4
    assert [e["callbackId"] for e in await entries(stack, tenant="beta")] == [beta_cb]
    assert len(await entries(stack, actor="token:sup", outcome="ok")) == 4
    assert await entries(stack, outcome="denied") == []
    assert await entries(stack, since="2100-01-01T00:00:00Z") == []

    scoped = await stack.internal.get(f"{A}/audit", headers=auth(ACME_ADM))
    assert {e["tenant"] for e in scoped.json()["data"]["items"]} == {"acme"}
    assert (await stack.internal.get(f"{A}/audit", headers=auth(SUP))).status_code == 403
    bad = await stack.internal.get(f"{A}/audit", params={"outcome": "maybe"}, headers=auth(ADM))
    assert bad.status_code == 400

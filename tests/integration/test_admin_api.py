"""The admin API on the internal port: tenants, API keys, services and callbacks."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from dialback.db.schema import api_keys, callbacks, capacity_usage
from dialback.services.schemas import ServiceConfig
from dialback.settings import Settings
from tests.support.stack import Stack, make_settings, started_stack, wait_for

A = "/admin/v1"
ALWAYS_OPEN = {"businessHours": {"alwaysOpen": True}}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def data(r: httpx.Response, code: int = 200) -> Any:
    """The envelope's data after checking the status and the corrId."""
    assert r.status_code == code, r.text
    body = r.json()
    assert body["status"]["code"] == code
    assert body["status"]["corrId"] == r.headers["x-correlation-id"]
    return body["data"]


def error(r: httpx.Response, code: int, *fragments: str) -> dict[str, Any]:
    """An error envelope whose message contains every fragment."""
    assert r.status_code == code, r.text
    body = r.json()
    assert body["status"]["code"] == code
    assert body["status"]["corrId"] == r.headers["x-correlation-id"]
    for f in fragments:
        assert f in body["status"]["message"], body["status"]["message"]
    return body


async def create_cb(stack: Stack, key: str, service: str = "sales", **fields: Any) -> str:
    body = {"serviceName": service, "phoneNumber": "+1 415 555 0100", **fields}
    r = await stack.public.post(
        "/engagement/v3/callbacks/create", json=body, headers={"x-api-key": key}
    )
    return data(r)["id"]


async def public_status(stack: Stack, key: str, phone: str = "+1 415 555 0199") -> int:
    r = await stack.public.post(
        "/engagement/v3/callbacks/create",
        json={"serviceName": "sales", "phoneNumber": phone, "desiredTime": iso(time.time() + 7200)},
        headers={"x-api-key": key},
    )
    return r.status_code


def cached_settings(stack_settings: Settings) -> Settings:
    """The test's settings with a long API-key cache, so changes must clear it to apply."""
    return stack_settings.model_copy(update={"api_key_cache_seconds": 300.0})


async def set_state(stack: Stack, cid: str, state: str) -> None:
    async with stack.rt.engine.begin() as conn:
        await conn.execute(callbacks.update().where(callbacks.c.id == cid).values(state=state))


ENDPOINTS = [
    ("POST", "/tenants", {"name": "x"}),
    ("GET", "/tenants", None),
    ("GET", "/tenants/acme", None),
    ("PATCH", "/tenants/acme", {"disabled": True}),
    ("POST", "/tenants/acme/api-keys", {"name": "k"}),
    ("GET", "/tenants/acme/api-keys", None),
    ("DELETE", "/tenants/acme/api-keys/00000000-0000-4000-8000-000000000000", None),
    ("GET", "/tenants/acme/services", None),
    ("GET", "/tenants/acme/services/sales", None),
    ("PUT", "/tenants/acme/services/sales", ALWAYS_OPEN),
    ("DELETE", "/tenants/acme/services/sales", None),
    ("GET", "/callbacks", None),
    ("GET", "/callbacks/00000000-0000-4000-8000-000000000000", None),
    ("POST", "/callbacks/00000000-0000-4000-8000-000000000000/cancel", None),
    ("POST", "/callbacks/00000000-0000-4000-8000-000000000000/reschedule", {"desiredTime": "x"}),
]


async def test_every_endpoint_needs_the_admin_token(stack: Stack) -> None:
    await stack.tenant("acme")
    for method, path, body in ENDPOINTS:
        req = stack.internal.build_request(method, A + path, json=body)
        del req.headers["authorization"]
        error(await stack.internal.send(req), 401, "missing Authorization")
        r = await stack.internal.request(
            method, A + path, json=body, headers={"authorization": "Bearer wrong-token"}
        )
        error(r, 401, "invalid admin token")
        r = await stack.internal.request(
            method, A + path, json=body, headers={"authorization": "Basic dGVzdDp0ZXN0"}
        )
        assert r.status_code == 401, (method, path, r.text)
    # Nothing was changed by the refused requests.
    tenants = data(await stack.internal.get(f"{A}/tenants"))
    assert [(t["name"], t["disabled"]) for t in tenants] == [("acme", False)]
    assert len(data(await stack.internal.get(f"{A}/tenants/acme/services"))) == 1


async def test_admin_api_disabled_without_configured_tokens(stack_settings: Settings) -> None:
    async with started_stack(
        stack_settings.model_copy(update={"admin_tokens": SecretStr("")})
    ) as s:
        error(await s.internal.get(f"{A}/tenants"), 401, "admin API is disabled")


async def test_tenant_lifecycle(stack: Stack) -> None:
    r = await stack.internal.post(
        f"{A}/tenants", json={"name": "globex", "settings": {"throttle": {"maxCallbacks": 7}}}
    )
    t = data(r, 201)
    assert t["name"] == "globex" and t["disabled"] is False
    assert t["settings"] == {"throttle": {"maxCallbacks": 7, "windowSeconds": 60}}
    assert t["createdAt"].endswith("Z") and len(t["id"]) == 36

    data(await stack.internal.post(f"{A}/tenants", json={"name": "initech"}), 201)
    error(
        await stack.internal.post(f"{A}/tenants", json={"name": "globex"}), 409, "name:", "globex"
    )

    listed = data(await stack.internal.get(f"{A}/tenants"))
    assert [x["name"] for x in listed] == ["globex", "initech"]
    assert data(await stack.internal.get(f"{A}/tenants/globex")) == t
    error(await stack.internal.get(f"{A}/tenants/nobody"), 404, "nobody")
    error(await stack.internal.get(f"{A}/tenants/bad%00name"), 404, "no tenant")

    r = await stack.internal.patch(
        f"{A}/tenants/globex", json={"settings": {"throttle": {"windowSeconds": 10}}}
    )
    assert data(r)["settings"] == {"throttle": {"maxCallbacks": 500, "windowSeconds": 10}}
    r = await stack.internal.patch(f"{A}/tenants/globex", json={"disabled": True})
    assert data(r)["disabled"] is True
    assert data(await stack.internal.get(f"{A}/tenants/globex"))["disabled"] is True
    error(await stack.internal.patch(f"{A}/tenants/nobody", json={"disabled": True}), 404)


async def test_tenant_requests_are_validated(stack: Stack) -> None:
    cases = [
        ({"name": "has space"}, "name:"),
        ({"name": ""}, "name:"),
        ({}, "name: field required"),
        ({"name": "ok", "colour": "red"}, "colour: unknown field"),
        ({"name": "ok", "settings": {"throttle": {"maxCallbacks": 0}}}, "settings.throttle"),
    ]
    for body, fragment in cases:
        error(await stack.internal.post(f"{A}/tenants", json=body), 400, fragment)
    await stack.tenant("acme")
    r = await stack.internal.patch(f"{A}/tenants/acme", json={"disabled": "maybe"})
    error(r, 400, "disabled")
    r = await stack.internal.patch(
        f"{A}/tenants/acme", json={"settings": {"throttle": {"windowSeconds": -1}}}
    )
    error(r, 400, "settings.throttle.windowSeconds")
    assert data(await stack.internal.get(f"{A}/tenants"))[0]["settings"] == {}


async def test_disabling_a_tenant_and_changing_settings_apply_at_once(
    stack_settings: Settings,
) -> None:
    async with started_stack(cached_settings(stack_settings)) as s:
        key = await s.tenant("acme")
        assert await public_status(s, key, "+1 415 555 0101") == 200
        data(await s.internal.patch(f"{A}/tenants/acme", json={"disabled": True}))
        assert await public_status(s, key, "+1 415 555 0102") == 401
        data(await s.internal.patch(f"{A}/tenants/acme", json={"disabled": False}))
        assert await public_status(s, key, "+1 415 555 0103") == 200
        # Settings travel with the cached tenant: a lower throttle must apply at once.
        r = await s.internal.patch(
            f"{A}/tenants/acme",
            json={"settings": {"throttle": {"maxCallbacks": 1, "windowSeconds": 86400}}},
        )
        data(r)
        assert await public_status(s, key, "+1 415 555 0104") == 200
        assert await public_status(s, key, "+1 415 555 0105") == 429


async def test_api_keys_are_shown_once_and_stored_hashed(stack: Stack) -> None:
    await stack.tenant("acme")
    r = await stack.internal.post(f"{A}/tenants/acme/api-keys", json={"name": "web"})
    created = data(r, 201)
    key = created["key"]
    assert created["name"] == "web" and created["prefix"] == key[:8]
    assert created["revokedAt"] is None and created["tenant"] == "acme"
    assert await public_status(stack, key) == 200

    default = data(await stack.internal.post(f"{A}/tenants/acme/api-keys"), 201)
    assert default["name"] == "default" and default["key"] != key

    listed = data(await stack.internal.get(f"{A}/tenants/acme/api-keys"))
    assert [k["name"] for k in listed] == ["test", "web", "default"]
    for k in listed:
        assert set(k) == {"id", "name", "prefix", "createdAt", "revokedAt"}
    assert r.text.count(key) == 1  # the plaintext is in the create answer only
    listing = (await stack.internal.get(f"{A}/tenants/acme/api-keys")).text
    assert key not in listing and key[8:] not in listing

    async with stack.rt.engine.connect() as conn:
        rows = (await conn.execute(sa.select(api_keys))).all()
    stored = " ".join(str(v) for row in rows for v in row)
    assert key not in stored and default["key"] not in stored
    by_id = {row.id: row for row in rows}
    assert by_id[created["id"]].key_hash == hashlib.sha256(key.encode()).hexdigest()

    error(await stack.internal.post(f"{A}/tenants/nobody/api-keys", json={"name": "x"}), 404)
    error(await stack.internal.get(f"{A}/tenants/nobody/api-keys"), 404, "nobody")
    r = await stack.internal.post(f"{A}/tenants/acme/api-keys", json={"name": ""})
    error(r, 400, "name:")


async def test_revoked_key_stops_working_at_once(stack_settings: Settings) -> None:
    async with started_stack(cached_settings(stack_settings)) as s:
        await s.tenant("acme")
        await s.tenant("other")
        created = data(await s.internal.post(f"{A}/tenants/acme/api-keys", json={"name": "w"}), 201)
        key, kid = created["key"], created["id"]
        assert await public_status(s, key, "+1 415 555 0111") == 200  # now cached

        # Another tenant's path, an unknown id and a malformed id do not revoke it.
        error(await s.internal.delete(f"{A}/tenants/other/api-keys/{kid}"), 404, "keyId")
        missing = "00000000-0000-4000-8000-000000000000"
        error(await s.internal.delete(f"{A}/tenants/acme/api-keys/{missing}"), 404, "keyId")
        error(await s.internal.delete(f"{A}/tenants/acme/api-keys/x%00y"), 404)
        error(await s.internal.delete(f"{A}/tenants/nobody/api-keys/{kid}"), 404, "nobody")
        assert await public_status(s, key, "+1 415 555 0112") == 200

        revoked = data(await s.internal.delete(f"{A}/tenants/acme/api-keys/{kid}"))
        assert revoked["id"] == kid and revoked["revokedAt"] is not None
        r = await s.public.post(
            "/engagement/v3/callbacks/create",
            json={"serviceName": "sales", "phoneNumber": "+1 415 555 0113"},
            headers={"x-api-key": key},
        )
        error(r, 401, "invalid x-api-key")
        error(await s.internal.delete(f"{A}/tenants/acme/api-keys/{kid}"), 404, "no active")
        listed = data(await s.internal.get(f"{A}/tenants/acme/api-keys"))
        assert next(k for k in listed if k["id"] == kid)["revokedAt"] == revoked["revokedAt"]


async def test_service_crud(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cfg = {
        "businessHours": {
            "timezone": "Europe/Berlin",
            "weekly": {"mon": [{"start": "09:00", "end": "17:00"}]},
        },
        "capacity": {"slotMinutes": 60, "defaultCapacity": 3},
        "retry": {"maxAttempts": 2},
    }
    r = await stack.internal.put(f"{A}/tenants/acme/services/support", json=cfg)
    svc = data(r, 201)
    assert svc["name"] == "support"
    assert svc["config"]["businessHours"]["timezone"] == "Europe/Berlin"
    assert svc["config"]["capacity"]["defaultCapacity"] == 3
    assert svc["config"]["retry"]["maxAttempts"] == 2
    assert svc["config"]["throttle"]["maxOpenPerNumber"] == 2  # defaults filled in
    assert svc.pop("routingProvisioned") is True  # stream and consumer groups exist
    assert [w.split(":")[0] for w in svc.pop("warnings")] == ["validation.defaultCountry not set"]

    got = data(await stack.internal.get(f"{A}/tenants/acme/services/support"))
    assert got == svc
    names = [x["name"] for x in data(await stack.internal.get(f"{A}/tenants/acme/services"))]
    assert names == ["sales", "support"]

    # The public API has the old config cached; a replace must apply at once.
    await create_cb(stack, key, phoneNumber="+1 415 555 0120")
    r = await stack.internal.put(
        f"{A}/tenants/acme/services/sales", json={**ALWAYS_OPEN, "immediateCallbackEnabled": False}
    )
    replaced = data(r, 200)
    assert replaced["config"]["immediateCallbackEnabled"] is False
    r = await stack.public.post(
        "/engagement/v3/callbacks/create",
        json={"serviceName": "sales", "phoneNumber": "+1 415 555 0121"},
        headers={"x-api-key": key},
    )
    error(r, 400, "does not offer immediate callbacks")

    deleted = data(await stack.internal.delete(f"{A}/tenants/acme/services/support"))
    assert deleted["name"] == "support"
    error(await stack.internal.get(f"{A}/tenants/acme/services/support"), 404, "support")
    error(await stack.internal.delete(f"{A}/tenants/acme/services/support"), 404, "support")


async def test_service_errors(stack: Stack) -> None:
    key = await stack.tenant("acme")
    svc = f"{A}/tenants/acme/services"
    error(await stack.internal.get(f"{A}/tenants/nobody/services"), 404, "nobody")
    error(await stack.internal.get(f"{A}/tenants/nobody/services/sales"), 404, "nobody")
    error(await stack.internal.put(f"{A}/tenants/nobody/services/x", json={}), 404, "nobody")
    error(await stack.internal.delete(f"{A}/tenants/nobody/services/sales"), 404, "nobody")
    error(await stack.internal.get(f"{svc}/nothing"), 404, "nothing")
    error(await stack.internal.put(f"{svc}/bad%20name", json=ALWAYS_OPEN), 400, "name:")
    error(await stack.internal.put(f"{svc}/-x", json=ALWAYS_OPEN), 400, "name:")
    invalid = [
        ({"businessHours": {"timezone": "Mars/Olympus"}}, "businessHours.timezone"),
        (
            {"businessHours": {"weekly": {"mon": [{"start": "10:00", "end": "09:00"}]}}},
            "businessHours.weekly.mon.0",
        ),
        ({"businessHours": {"weekly": {"funday": []}}}, "businessHours.weekly.funday"),
        ({"capacity": {"slotMinutes": 45}}, "capacity.slotMinutes"),
        ({"capacity": {"defaultCapacity": -1}}, "capacity.defaultCapacity"),
        ({"validation": {"defaultCountry": "XX"}}, "validation.defaultCountry"),
        ({"validation": {"blockedPatterns": ["("]}}, "validation.blockedPatterns"),
        ({"retry": {"retryOn": ["sometimes"]}}, "retry.retryOn.0"),
        ({"throttle": {"maxOpenPerNumber": 0}}, "throttle.maxOpenPerNumber"),
        ({"immediateCallbackEnabled": "perhaps"}, "immediateCallbackEnabled"),
        ({"surprise": 1}, "surprise: unknown field"),
    ]
    for body, fragment in invalid:
        error(await stack.internal.put(f"{svc}/sales", json=body), 400, fragment)
    r = await stack.internal.put(
        f"{svc}/sales", content=b"{not json", headers={"content-type": "application/json"}
    )
    error(r, 400, "not valid JSON")
    # The refused changes left the service as it was.
    assert data(await stack.internal.get(f"{svc}/sales"))["config"]["businessHours"]["alwaysOpen"]

    # A service with open callbacks cannot be deleted.
    await create_cb(stack, key, desiredTime=iso(time.time() + 3600))
    error(await stack.internal.delete(f"{svc}/sales"), 409, "1 open callbacks")
    assert data(await stack.internal.get(f"{svc}/sales"))["name"] == "sales"


async def _seed_callbacks(stack: Stack) -> tuple[list[str], list[str], float]:
    """Five scheduled callbacks for acme (3 sales, 2 support) and two for globex."""
    now = time.time()
    acme = await stack.tenant("acme")
    await stack.tenant("acme", service="support")
    globex = await stack.tenant("globex")
    ids: list[str] = []
    for i in range(3):
        ids.append(
            await create_cb(
                stack,
                acme,
                phoneNumber=f"+1 415 555 02{i:02d}",
                desiredTime=iso(now + 3600 * (i + 1)),
                userData={"n": i},
            )
        )
    await asyncio.sleep(0.01)
    mid = time.time()
    await asyncio.sleep(0.01)
    for i in range(2):
        ids.append(
            await create_cb(
                stack,
                acme,
                "support",
                phoneNumber=f"+1 415 555 03{i:02d}",
                desiredTime=iso(now + 3600 * (i + 10)),
            )
        )
    other = [
        await create_cb(
            stack, globex, phoneNumber=f"+1 415 555 04{i:02d}", desiredTime=iso(now + 7200)
        )
        for i in range(2)
    ]
    return ids, other, mid


async def test_callback_list_filters_and_paging(stack: Stack) -> None:
    acme_ids, globex_ids, mid = await _seed_callbacks(stack)
    now = time.time()

    async def page(**params: Any) -> dict[str, Any]:
        return data(await stack.internal.get(f"{A}/callbacks", params=params))

    everything = await page()
    assert everything["total"] == 7 and everything["limit"] == 50 and everything["offset"] == 0
    assert {i["id"] for i in everything["items"]} == set(acme_ids + globex_ids)
    item = next(i for i in everything["items"] if i["id"] == acme_ids[0])
    assert item == {
        "id": acme_ids[0],
        "tenant": "acme",
        "serviceName": "sales",
        "phoneNumber": "+14155550200",
        "callbackState": "SCHEDULED",
        "callbackReason": None,
        "desiredTime": item["dueTime"],
        "dueTime": item["dueTime"],
        "createdTime": item["createdTime"],
        "attempt": 1,
        "priority": 0,
        "parked": False,
    }
    assert item["createdTime"].endswith("Z") and item["dueTime"] > item["createdTime"]

    # Newest first, paged without overlap.
    ordered = [i["id"] for i in everything["items"]]
    first = await page(limit=3)
    second = await page(limit=3, offset=3)
    last = await page(limit=3, offset=6)
    assert [i["id"] for i in first["items"] + second["items"] + last["items"]] == ordered
    assert (first["total"], len(last["items"]), last["offset"]) == (7, 1, 6)
    assert ordered[:2] == globex_ids[::-1]
    assert (await page(offset=100))["items"] == []

    acme = await page(tenant="acme")
    assert acme["total"] == 5 and {i["tenant"] for i in acme["items"]} == {"acme"}
    support = await page(tenant="acme", service="support")
    assert {i["id"] for i in support["items"]} == set(acme_ids[3:])
    assert (await page(service="sales"))["total"] == 5  # sales exists in both tenants
    assert (await page(state="SCHEDULED"))["total"] == 7
    assert (await page(state="COMPLETED"))["total"] == 0

    before = await page(tenant="acme", createdTo=iso(mid))
    assert {i["id"] for i in before["items"]} == set(acme_ids[:3])
    after = await page(tenant="acme", createdFrom=iso(mid))
    assert {i["id"] for i in after["items"]} == set(acme_ids[3:])
    due = await page(dueFrom=iso(now + 1.5 * 3600), dueTo=iso(now + 2.5 * 3600))
    assert {i["id"] for i in due["items"]} == {acme_ids[1], *globex_ids}
    assert (await page(dueFrom=iso(now + 9.5 * 3600), limit=1))["total"] == 2
    assert (await page(createdFrom="2000-01-01T00:00:00Z", createdTo="2000-01-02"))["total"] == 0

    # The cancelled callback shows as COMPLETED with its reason.
    data(await stack.internal.post(f"{A}/callbacks/{acme_ids[0]}/cancel"))
    done = await page(state="COMPLETED")
    assert [(i["id"], i["callbackReason"]) for i in done["items"]] == [(acme_ids[0], "cancelled")]


async def test_callback_list_rejects_bad_filters(stack: Stack) -> None:
    url = f"{A}/callbacks"
    error(await stack.internal.get(url, params={"limit": 0}), 400, "limit:")
    error(await stack.internal.get(url, params={"limit": 251}), 400, "limit:")
    error(await stack.internal.get(url, params={"limit": "many"}), 400, "limit:")
    error(await stack.internal.get(url, params={"offset": -1}), 400, "offset:")
    error(await stack.internal.get(url, params={"state": "LOST"}), 400, "state:")
    error(await stack.internal.get(url, params={"createdFrom": "yesterday"}), 400, "createdFrom:")
    error(await stack.internal.get(url, params={"dueTo": "2024-13-01"}), 400, "dueTo:")
    error(await stack.internal.get(url, params={"service": "a\x00b"}), 400, "service:")
    error(await stack.internal.get(url, params={"tenant": "nobody"}), 404, "nobody")
    assert data(await stack.internal.get(url, params={"limit": 250}))["limit"] == 250


async def test_callback_detail_and_cancel(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cid = await create_cb(
        stack, key, desiredTime=iso(time.time() + 3600), userData={"order": "A1", "vip": True}
    )
    detail = data(await stack.internal.get(f"{A}/callbacks/{cid}"))
    assert detail["id"] == cid and detail["tenant"] == "acme"
    assert detail["callbackState"] == "SCHEDULED"
    assert detail["userData"] == {"order": "A1", "vip": True}
    [created] = detail["history"]
    assert created["at"] == detail["createdTime"]
    assert created["fromState"] is None and created["toState"] == "SCHEDULED"
    assert created["source"] == "api" and created["corrId"]

    r = await stack.internal.post(f"{A}/callbacks/{cid}/cancel")
    cancelled = data(r)
    assert cancelled["callbackState"] == "COMPLETED" and cancelled["callbackReason"] == "cancelled"
    first, event = cancelled["history"]
    assert first == created
    assert event["at"].endswith("Z")
    assert {k: v for k, v in event.items() if k != "at"} == {
        "fromState": "SCHEDULED",
        "toState": "COMPLETED",
        "reason": "cancelled",
        "attempt": 1,
        "source": "admin",
        "corrId": r.headers["x-correlation-id"],
    }
    again = data(await stack.internal.get(f"{A}/callbacks/{cid}"))
    # The cancel's own audit entry is written after its answer was built: only a later read
    # shows it in the timeline.
    assert {k: v for k, v in again.items() if k != "timeline"} == {
        k: v for k, v in cancelled.items() if k != "timeline"
    }
    assert [t["kind"] for t in again["timeline"]] == ["created", "state", "audit"]
    assert again["timeline"][-1]["action"] == "admin.cancel_callback"
    error(await stack.internal.post(f"{A}/callbacks/{cid}/cancel"), 409, "COMPLETED (cancelled)")

    busy = await create_cb(
        stack, key, phoneNumber="+1 415 555 0500", desiredTime=iso(time.time() + 3600)
    )
    await set_state(stack, busy, "PROCESSING")
    error(await stack.internal.post(f"{A}/callbacks/{busy}/cancel"), 409, "PROCESSING")

    missing = "00000000-0000-4000-8000-000000000000"
    for path in (f"/callbacks/{missing}", "/callbacks/x%00y"):
        error(await stack.internal.get(A + path), 404, "no callback")
        error(await stack.internal.post(A + path + "/cancel"), 404, "no callback")


def slot_aligned(t: float, minutes: int = 30) -> float:
    step = minutes * 60
    return (t // step + 1) * step


async def usage(stack: Stack) -> dict[float, int]:
    async with stack.rt.engine.connect() as conn:
        rows = (await conn.execute(sa.select(capacity_usage))).all()
    return {r.slot_start: r.booked for r in rows}


async def test_reschedule_moves_capacity_between_slots(stack: Stack) -> None:
    cfg = ServiceConfig.model_validate(
        {**ALWAYS_OPEN, "capacity": {"slotMinutes": 30, "defaultCapacity": 1}}
    )
    key = await stack.tenant("acme", config=cfg)
    s1 = slot_aligned(time.time() + 2 * 3600)
    s2, s3 = s1 + 3600, s1 + 7200
    a = await create_cb(stack, key, phoneNumber="+1 415 555 0601", desiredTime=iso(s1 + 60))
    await create_cb(stack, key, phoneNumber="+1 415 555 0602", desiredTime=iso(s2 + 60))
    assert await usage(stack) == {s1: 1, s2: 1}

    # The target slot is full: 429 with proposals, nothing moved.
    r = await stack.internal.post(
        f"{A}/callbacks/{a}/reschedule", json={"desiredTime": iso(s2 + 120)}
    )
    body = error(r, 429, "desiredTime:", "is full")
    proposed = body["data"]["slots"]  # utcTime -> remaining capacity, as for create
    assert proposed and iso(s2) not in proposed and proposed[iso(s2 + 1800)] == "1"
    assert all(type(v) is str for v in proposed.values())
    assert await usage(stack) == {s1: 1, s2: 1}
    assert data(await stack.internal.get(f"{A}/callbacks/{a}"))["dueTime"] == iso(s1 + 60)

    moved = data(
        await stack.internal.post(
            f"{A}/callbacks/{a}/reschedule", json={"desiredTime": iso(s3 + 300)}
        )
    )
    assert moved["callbackState"] == "SCHEDULED"
    assert moved["dueTime"] == moved["desiredTime"] == iso(s3 + 300)
    ev = moved["history"][-1]
    assert (ev["fromState"], ev["toState"], ev["reason"], ev["source"]) == (
        "SCHEDULED",
        "SCHEDULED",
        "rescheduled",
        "admin",
    )
    assert await usage(stack) == {s1: 0, s2: 1, s3: 1}
    async with stack.rt.engine.connect() as conn:
        slot = (
            await conn.execute(sa.select(callbacks.c.slot_start).where(callbacks.c.id == a))
        ).scalar()
    assert slot == s3

    # Moving within the same slot keeps its place; the freed slot can be booked again.
    data(
        await stack.internal.post(
            f"{A}/callbacks/{a}/reschedule", json={"desiredTime": iso(s3 + 900)}
        )
    )
    assert await usage(stack) == {s1: 0, s2: 1, s3: 1}
    await create_cb(stack, key, phoneNumber="+1 415 555 0603", desiredTime=iso(s1 + 600))
    r = await stack.public.post(
        "/engagement/v3/callbacks/create",
        json={
            "serviceName": "sales",
            "phoneNumber": "+1 415 555 0604",
            "desiredTime": iso(s3 + 60),
        },
        headers={"x-api-key": key},
    )
    error(r, 429, "is full")
    assert await usage(stack) == {s1: 1, s2: 1, s3: 1}


async def test_rescheduled_callback_is_dispatched_at_its_new_time(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cid = await create_cb(stack, key, desiredTime=iso(time.time() + 86400))
    data(
        await stack.internal.post(
            f"{A}/callbacks/{cid}/reschedule", json={"desiredTime": iso(time.time() + 1)}
        )
    )

    async def completed() -> dict[str, Any] | None:
        d = data(await stack.internal.get(f"{A}/callbacks/{cid}"))
        return d if d["callbackState"] == "COMPLETED" else None

    done = await wait_for(completed, timeout=15)
    assert done["callbackReason"] == "answered"
    steps = [(e["toState"], e["reason"]) for e in done["history"]]
    assert steps == [
        ("SCHEDULED", None),
        ("SCHEDULED", "rescheduled"),
        ("QUEUED", None),
        ("ROUTING", None),
        ("PROCESSING", None),
        ("COMPLETED", "answered"),
    ]


async def test_reschedule_errors(stack: Stack) -> None:
    hours = {
        "businessHours": {
            "timezone": "UTC",
            "weekly": {"wed": [{"start": "09:00", "end": "10:00"}]},
        }
    }
    key = await stack.tenant("acme")
    await stack.tenant("acme", service="office", config=ServiceConfig.model_validate(hours))
    cid = await create_cb(stack, key, desiredTime=iso(time.time() + 3600))
    url = f"{A}/callbacks/{cid}/reschedule"

    error(
        await stack.internal.post(url, json={"desiredTime": iso(time.time() - 60)}), 400, "future"
    )
    r = await stack.internal.post(url, json={"desiredTime": iso(time.time() + 91 * 86400)})
    error(r, 400, "90 days")
    error(await stack.internal.post(url, json={"desiredTime": "soon"}), 400, "desiredTime:")
    error(await stack.internal.post(url, json={}), 400, "desiredTime: field required")
    r = await stack.internal.post(url, json={"desiredTime": iso(time.time() + 7200), "x": 1})
    error(r, 400, "x: unknown field")

    # Outside business hours: a Wednesday 09:00-10:00 UTC service, asked for 12:00 UTC.
    wed = datetime.fromtimestamp(time.time() + 2 * 86400, UTC)
    while wed.weekday() != 2:
        wed += timedelta(days=1)
    noon = wed.replace(hour=12, minute=0, second=0, microsecond=0)
    office_cb = await create_cb(
        stack,
        key,
        "office",
        phoneNumber="+1 415 555 0701",
        desiredTime=noon.replace(hour=9, minute=30).isoformat(),
    )
    r = await stack.internal.post(
        f"{A}/callbacks/{office_cb}/reschedule", json={"desiredTime": noon.isoformat()}
    )
    error(r, 400, "outside the business hours", "next opening")
    r = await stack.internal.post(
        f"{A}/callbacks/{office_cb}/reschedule",
        json={"desiredTime": noon.replace(hour=9, minute=45).isoformat()},
    )
    assert data(r)["dueTime"] == iso(noon.replace(hour=9, minute=45).timestamp())

    missing = "00000000-0000-4000-8000-000000000000"
    r = await stack.internal.post(
        f"{A}/callbacks/{missing}/reschedule", json={"desiredTime": iso(time.time() + 7200)}
    )
    error(r, 404, "no callback")

    for state in ("QUEUED", "ROUTING", "PROCESSING"):
        await set_state(stack, cid, state)
        r = await stack.internal.post(url, json={"desiredTime": iso(time.time() + 7200)})
        error(r, 409, state, "only SCHEDULED")
    await set_state(stack, cid, "SCHEDULED")
    data(await stack.internal.post(f"{A}/callbacks/{cid}/cancel"))
    r = await stack.internal.post(url, json={"desiredTime": iso(time.time() + 7200)})
    error(r, 409, "COMPLETED (cancelled)")


async def test_reschedule_refuses_a_callback_being_dispatched(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cid = await create_cb(stack, key, desiredTime=iso(time.time() + 3600))
    async with stack.rt.engine.begin() as conn:
        await conn.execute(
            callbacks.update()
            .where(callbacks.c.id == cid)
            .values(lease_owner="other-replica", lease_expires_at=time.time() + 30)
        )
    r = await stack.internal.post(
        f"{A}/callbacks/{cid}/reschedule", json={"desiredTime": iso(time.time() + 7200)}
    )
    error(r, 409, "being dispatched")


@pytest.mark.parametrize("path", ["/tenants/acme", "/callbacks", "/tenants/acme/services"])
async def test_admin_answers_use_the_envelope_and_echo_corr_id(stack: Stack, path: str) -> None:
    await stack.tenant("acme")
    r = await stack.internal.get(A + path, headers={"x-correlation-id": "trace-42"})
    assert r.status_code == 200
    assert r.json()["status"] == {"code": 200, "message": "Successful", "corrId": "trace-42"}


async def test_admin_api_on_embedded_sqlite(tmp_path: Path) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    async with started_stack(settings) as s:
        data(await s.internal.post(f"{A}/tenants", json={"name": "acme"}), 201)
        error(await s.internal.post(f"{A}/tenants", json={"name": "acme"}), 409)
        cfg = {**ALWAYS_OPEN, "capacity": {"defaultCapacity": 1}}
        data(await s.internal.put(f"{A}/tenants/acme/services/sales", json=cfg), 201)
        key = data(await s.internal.post(f"{A}/tenants/acme/api-keys"), 201)["key"]
        s1 = slot_aligned(time.time() + 3600)
        cid = await create_cb(s, key, desiredTime=iso(s1 + 60))
        other = await create_cb(s, key, phoneNumber="+1 415 555 0801", desiredTime=iso(s1 + 1800))
        r = await s.internal.post(
            f"{A}/callbacks/{cid}/reschedule", json={"desiredTime": iso(s1 + 1860)}
        )
        error(r, 429, "is full")
        moved = await s.internal.post(
            f"{A}/callbacks/{cid}/reschedule", json={"desiredTime": iso(s1 + 3660)}
        )
        assert data(moved)["dueTime"] == iso(s1 + 3660)
        assert await usage(s) == {s1: 0, s1 + 1800: 1, s1 + 3600: 1}
        listed = data(await s.internal.get(f"{A}/callbacks", params={"tenant": "acme"}))
        assert listed["total"] == 2 and {i["id"] for i in listed["items"]} == {cid, other}
        cancelled = data(await s.internal.post(f"{A}/callbacks/{cid}/cancel"))
        assert [e["toState"] for e in cancelled["history"]] == [
            "SCHEDULED",
            "SCHEDULED",
            "COMPLETED",
        ]
        assert await usage(s) == {s1: 0, s1 + 1800: 1, s1 + 3600: 0}
        kid = data(await s.internal.get(f"{A}/tenants/acme/api-keys"))[0]["id"]
        data(await s.internal.delete(f"{A}/tenants/acme/api-keys/{kid}"))
        assert await public_status(s, key) == 401

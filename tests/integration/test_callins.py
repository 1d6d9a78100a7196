"""Click-To-Call-In: groups via the admin API, requests via the public API, dial-in matching."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from testbed.metrics_parse import parse, value

from dialback.db.schema import callin_requests
from tests.support.stack import SettingsFactory, Stack, make_settings, started_stack

CREATE = "/engagement/v3/call-in/requests/create"
MATCH = "/admin/v1/call-in/match"
POOL = ["+14155550100", "+14155550101", "+14155550102"]


def group_url(tenant: str, name: str) -> str:
    return f"/admin/v1/tenants/{tenant}/callin-groups/{name}"


async def put_group(stack: Stack, tenant: str, name: str, **config: Any) -> dict:
    body = {"numbers": POOL, **config}
    r = await stack.internal.put(group_url(tenant, name), json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()["data"]


async def create(stack: Stack, key: str, **body: Any) -> Any:
    return await stack.public.post(CREATE, json=body, headers={"x-api-key": key})


async def created(stack: Stack, key: str, **body: Any) -> dict:
    r = await create(stack, key, **body)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def message(r: Any) -> str:
    body = r.json()
    assert body["status"]["code"] == r.status_code
    assert body["status"]["corrId"] == r.headers["x-correlation-id"]
    return body["status"]["message"]


async def test_create_rotates_pool_with_access_code_and_expiry(stack: Stack) -> None:
    key = await stack.tenant("acme")
    await put_group(stack, "acme", "support", accessCode={"length": 8}, expirySeconds=600)
    before = time.time()
    seen = []
    for i in range(6):
        data = await created(
            stack,
            key,
            groupName="support",
            userData={"order": f"A{i}"},
            callbackServiceId="cb-123",
        )
        seen.append(data["toPhoneNumber"])
        assert data["groupName"] == "support"
        assert data["callbackServiceId"] == "cb-123"
        assert data["fromPhoneNumber"] is None
        code = data["accessCode"]
        # A JSON number, as the SDKs parse it: 8 digits, never a leading zero.
        assert type(code) is int and 10**7 <= code < 10**8
        assert isinstance(data["expirationTime"], int)
        assert before + 600 - 1 <= data["expirationTime"] <= time.time() + 600
        assert len(data["id"]) == 36
    # Round robin: every number in turn, then again from the start of the same order.
    assert sorted(seen[:3]) == sorted(POOL)
    assert seen[3:] == seen[:3]
    assert sum(stack.rt.metrics.ges_callin_created.series.values()) == 6


async def test_default_access_code_is_six_digits_and_from_is_normalised(stack: Stack) -> None:
    key = await stack.tenant("acme")
    await put_group(stack, "acme", "support")
    data = await created(stack, key, groupName="support", fromPhoneNumber="(650) 555-0123")
    assert type(data["accessCode"]) is int and 10**5 <= data["accessCode"] < 10**6
    assert data["fromPhoneNumber"] == "+16505550123"
    assert data["toPhoneNumber"] in POOL
    assert abs(data["expirationTime"] - (time.time() + 900)) <= 2


async def test_match_succeeds_once_then_404_and_wrong_code_404(stack: Stack) -> None:
    key = await stack.tenant("acme")
    await put_group(stack, "acme", "support")
    data = await created(
        stack, key, groupName="support", userData={"order": "A1", "bad-key": "x", "n": 3}
    )
    to, code = data["toPhoneNumber"], data["accessCode"]
    wrong = 100000 if code != 100000 else 100001

    r = await stack.internal.post(MATCH, json={"toPhoneNumber": to, "accessCode": wrong})
    assert r.status_code == 404, r.text
    assert "no open call-in request" in message(r)

    # The routing engine may send the caller's number too; with a code it does not matter.
    r = await stack.internal.post(
        MATCH, json={"toPhoneNumber": to, "accessCode": code, "fromPhoneNumber": "+12025550143"}
    )
    assert r.status_code == 200, r.text
    m = r.json()["data"]
    assert m["id"] == data["id"]
    assert m["tenant"] == "acme"
    assert m["groupName"] == "support"
    assert m["userData"] == {"order": "A1", "n": 3}
    assert m["state"] == "MATCHED" and m["matchedAt"]

    r = await stack.internal.post(MATCH, json={"toPhoneNumber": to, "accessCode": code})
    assert r.status_code == 404, r.text

    # A different number of the pool does not match that code either.
    other = await created(stack, key, groupName="support")
    r = await stack.internal.post(
        MATCH,
        json={
            "toPhoneNumber": next(n for n in POOL if n != other["toPhoneNumber"]),
            "accessCode": other["accessCode"],
        },
    )
    assert r.status_code == 404, r.text


async def test_newest_request_of_a_caller_wins(stack: Stack) -> None:
    key = await stack.tenant("acme")
    await put_group(
        stack, "acme", "walkin", numbers=["+14155550100"], accessCode={"enabled": False}
    )
    first = await created(stack, key, groupName="walkin", fromPhoneNumber="+16505550123")
    second = await created(stack, key, groupName="walkin", fromPhoneNumber="+16505550123")
    body = {"toPhoneNumber": "+14155550100", "fromPhoneNumber": "+16505550123"}
    r = await stack.internal.post(MATCH, json=body)
    assert r.status_code == 200 and r.json()["data"]["id"] == second["id"]
    r = await stack.internal.post(MATCH, json=body)
    assert r.status_code == 200 and r.json()["data"]["id"] == first["id"]
    r = await stack.internal.post(MATCH, json=body)
    assert r.status_code == 404


async def test_group_without_access_code_requires_from_number(stack: Stack) -> None:
    key = await stack.tenant("acme")
    await put_group(stack, "acme", "walkin", accessCode={"enabled": False})

    r = await create(stack, key, groupName="walkin")
    assert r.status_code == 400
    assert message(r).startswith("fromPhoneNumber:")

    data = await created(stack, key, groupName="walkin", fromPhoneNumber="650 555 0123")
    assert data["accessCode"] is None
    assert data["fromPhoneNumber"] == "+16505550123"

    # A code cannot reach a request without one; the caller's number (national form, read
    # in the dialled number's country) does, once.
    r = await stack.internal.post(
        MATCH, json={"toPhoneNumber": data["toPhoneNumber"], "accessCode": "123456"}
    )
    assert r.status_code == 404
    r = await stack.internal.post(
        MATCH, json={"toPhoneNumber": data["toPhoneNumber"], "fromPhoneNumber": "+16505559999"}
    )
    assert r.status_code == 404
    national = data["toPhoneNumber"].removeprefix("+1")
    body = {"toPhoneNumber": national, "fromPhoneNumber": "(650) 555-0123"}
    r = await stack.internal.post(MATCH, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["id"] == data["id"]
    assert r.json()["data"]["accessCode"] is None
    r = await stack.internal.post(MATCH, json=body)
    assert r.status_code == 404

    # Neither code nor caller number: nothing to match on.
    r = await stack.internal.post(MATCH, json={"toPhoneNumber": data["toPhoneNumber"]})
    assert r.status_code == 400
    assert message(r).startswith("fromPhoneNumber:")


async def test_expired_request_does_not_match(stack: Stack) -> None:
    key = await stack.tenant("acme")
    await put_group(stack, "acme", "short", expirySeconds=60)
    data = await created(stack, key, groupName="short")
    assert abs(data["expirationTime"] - (time.time() + 60)) <= 2
    async with stack.rt.engine.begin() as conn:
        await conn.execute(
            callin_requests.update()
            .where(callin_requests.c.id == data["id"])
            .values(expires_at=time.time() - 1)
        )
    body = {"toPhoneNumber": data["toPhoneNumber"], "accessCode": data["accessCode"]}
    r = await stack.internal.post(MATCH, json=body)
    assert r.status_code == 404, r.text
    r = await stack.internal.get("/admin/v1/call-in/requests", params={"tenant": "acme"})
    assert r.json()["data"]["items"][0]["state"] == "EXPIRED"


async def test_concurrent_matches_claim_a_request_once(stack: Stack) -> None:
    key = await stack.tenant("acme")
    await put_group(stack, "acme", "support")
    data = await created(stack, key, groupName="support")
    body = {"toPhoneNumber": data["toPhoneNumber"], "accessCode": data["accessCode"]}
    results = await asyncio.gather(*(stack.internal.post(MATCH, json=body) for _ in range(8)))
    assert sorted(r.status_code for r in results) == [200] + [404] * 7


async def test_cross_tenant_isolation(stack: Stack) -> None:
    key_a = await stack.tenant("acme")
    key_b = await stack.tenant("globex")
    await put_group(stack, "acme", "support")
    await created(stack, key_a, groupName="support")

    r = await create(stack, key_b, groupName="support")
    assert r.status_code == 400
    assert message(r) == "groupName: no call-in group named 'support'"

    r = await stack.internal.get("/admin/v1/call-in/requests", params={"tenant": "globex"})
    assert r.status_code == 200
    assert r.json()["data"]["items"] == [] and r.json()["data"]["total"] == 0
    r = await stack.internal.get("/admin/v1/call-in/requests", params={"tenant": "acme"})
    assert r.json()["data"]["total"] == 1
    assert r.json()["data"]["items"][0]["tenant"] == "acme"

    r = await stack.internal.get("/admin/v1/tenants/globex/callin-groups")
    assert r.status_code == 200 and r.json()["data"] == []
    r = await stack.internal.get(group_url("globex", "support"))
    assert r.status_code == 404


async def test_auth_and_bad_fields(stack: Stack) -> None:
    key = await stack.tenant("acme")
    await put_group(stack, "acme", "support")

    r = await stack.public.post(CREATE, json={"groupName": "support"})
    assert r.status_code == 401
    r = await stack.public.post(
        CREATE, json={"groupName": "support"}, headers={"x-api-key": "nope"}
    )
    assert r.status_code == 401

    r = await create(stack, key, groupName="nosuch")
    assert r.status_code == 400
    assert message(r) == "groupName: no call-in group named 'nosuch'"

    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "groupName: field required"),
        ({"groupName": ""}, "groupName:"),
        ({"groupName": "support", "fromPhoneNumber": "12"}, "fromPhoneNumber:"),
        ({"groupName": "support", "fromPhoneNumber": "not a number"}, "fromPhoneNumber:"),
        ({"groupName": "support", "fromPhoneNumber": ""}, "fromPhoneNumber:"),
        ({"groupName": "support", "userData": {"k": "x" * 5000}}, "userData.k: is longer"),
        ({"groupName": "support", "userData": {"k": {"n": 10**20}}}, "userData.k.n: integer"),
        ({"groupName": "support", "userData": "text"}, "userData:"),
        ({"groupName": "support", "callbackServiceId": "x" * 101}, "callbackServiceId:"),
        ({"groupName": 5}, "groupName:"),
    ]
    for body, prefix in cases:
        r = await stack.public.post(CREATE, json=body, headers={"x-api-key": key})
        assert r.status_code == 400, (body, r.text)
        assert message(r).startswith(prefix), (body, message(r))

    r = await stack.public.post(
        CREATE, content=b"{not json", headers={"x-api-key": key, "content-type": "application/json"}
    )
    assert r.status_code == 400
    r = await stack.internal.post(MATCH, json={"toPhoneNumber": "12", "accessCode": "123456"})
    assert r.status_code == 400 and message(r).startswith("toPhoneNumber:")
    r = await stack.internal.post(MATCH, json={"toPhoneNumber": POOL[0], "accessCode": "12a"})
    assert r.status_code == 400 and message(r).startswith("accessCode:")
    r = await stack.internal.post(MATCH, json={"toPhoneNumber": POOL[0], "pin": "1"})
    assert r.status_code == 400 and "pin: unknown field" in message(r)
    assert sum(stack.rt.metrics.ges_callin_created.series.values()) == 0


async def test_admin_group_crud_and_validation(stack: Stack) -> None:
    await stack.tenant("acme")
    url = group_url("acme", "support")
    r = await stack.internal.put(url, json={"numbers": ["415 555 0100", "+44 20 7946 0000"]})
    assert r.status_code == 201, r.text
    g = r.json()["data"]
    assert g["name"] == "support" and g["tenant"] == "acme"
    assert g["config"] == {
        "defaultCountry": "US",
        "numbers": ["+14155550100", "+442079460000"],
        "accessCode": {"enabled": True, "length": 6},
        "expirySeconds": 900,
    }
    r = await stack.internal.put(
        url,
        json={"numbers": ["020 7946 0000"], "defaultCountry": "gb", "expirySeconds": 86400},
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["id"] == g["id"]
    assert r.json()["data"]["config"]["numbers"] == ["+442079460000"]
    assert r.json()["data"]["config"]["defaultCountry"] == "GB"

    r = await stack.internal.get(url)
    assert r.status_code == 200 and r.json()["data"]["config"]["expirySeconds"] == 86400
    await put_group(stack, "acme", "billing")
    r = await stack.internal.get("/admin/v1/tenants/acme/callin-groups")
    assert [x["name"] for x in r.json()["data"]] == ["billing", "support"]

    bad: list[tuple[dict[str, Any], str]] = [
        ({}, "numbers: field required"),
        ({"numbers": []}, "numbers:"),
        ({"numbers": ["+1415555010"]}, "numbers: number 1"),
        ({"numbers": [POOL[0], "415-555-0100"]}, "numbers: number 2: +14155550100 is listed twice"),
        ({"numbers": [f"+1415555{i:04d}" for i in range(101)]}, "numbers:"),
        ({"numbers": POOL, "expirySeconds": 59}, "expirySeconds:"),
        ({"numbers": POOL, "expirySeconds": 86401}, "expirySeconds:"),
        ({"numbers": POOL, "accessCode": {"length": 3}}, "accessCode.length:"),
        ({"numbers": POOL, "accessCode": {"length": 11}}, "accessCode.length:"),
        ({"numbers": POOL, "accessCode": {"digits": 4}}, "accessCode.digits: unknown field"),
        ({"numbers": POOL, "defaultCountry": "XX"}, "defaultCountry:"),
        ({"numbers": POOL, "colour": "red"}, "colour: unknown field"),
    ]
    for body, prefix in bad:
        r = await stack.internal.put(group_url("acme", "broken"), json=body)
        assert r.status_code == 400, (body, r.text)
        assert message(r).startswith(prefix), (body, message(r))
    r = await stack.internal.put(group_url("acme", "bad name!"), json={"numbers": POOL})
    assert r.status_code == 400
    r = await stack.internal.put(group_url("nosuch", "support"), json={"numbers": POOL})
    assert r.status_code == 404 and "no tenant named 'nosuch'" in message(r)
    r = await stack.internal.get(group_url("acme", "broken"))
    assert r.status_code == 404

    r = await stack.internal.get(url, headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = await stack.internal.post(
        MATCH, json={"toPhoneNumber": POOL[0]}, headers={"authorization": ""}
    )
    assert r.status_code == 401

    r = await stack.internal.delete(url)
    assert r.status_code == 200 and r.json()["data"] == {"name": "support", "deleted": True}
    r = await stack.internal.delete(url)
    assert r.status_code == 404
    r = await stack.internal.get(url)
    assert r.status_code == 404


async def test_list_requests_newest_first_with_filters(stack: Stack) -> None:
    key = await stack.tenant("acme")
    key_b = await stack.tenant("globex")
    await put_group(stack, "acme", "support")
    await put_group(stack, "acme", "billing")
    await put_group(stack, "globex", "support")
    ids = []
    for group in ("support", "billing", "support"):
        ids.append((await created(stack, key, groupName=group))["id"])
    other = (await created(stack, key_b, groupName="support"))["id"]

    r = await stack.internal.get("/admin/v1/call-in/requests")
    data = r.json()["data"]
    assert [x["id"] for x in data["items"]] == [other, *reversed(ids)]
    assert data["total"] == 4

    r = await stack.internal.get(
        "/admin/v1/call-in/requests", params={"tenant": "acme", "group": "support"}
    )
    assert [x["id"] for x in r.json()["data"]["items"]] == [ids[2], ids[0]]
    assert r.json()["data"]["items"][0]["state"] == "PENDING"

    r = await stack.internal.get(
        "/admin/v1/call-in/requests", params={"tenant": "acme", "limit": 1, "offset": 1}
    )
    d = r.json()["data"]
    assert [x["id"] for x in d["items"]] == [ids[1]] and d["total"] == 3

    r = await stack.internal.get("/admin/v1/call-in/requests", params={"tenant": "nosuch"})
    assert r.status_code == 400 and message(r).startswith("tenant:")
    r = await stack.internal.get("/admin/v1/call-in/requests", params={"limit": 0})
    assert r.status_code == 400 and message(r).startswith("limit:")


async def test_callins_on_embedded_sqlite(tmp_path: Path) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    async with started_stack(settings) as stack:
        key = await stack.tenant("acme")
        await put_group(stack, "acme", "support", numbers=POOL[:2], accessCode={"length": 4})
        a = await created(stack, key, groupName="support", userData={"order": "A1"})
        b = await created(stack, key, groupName="support")
        assert {a["toPhoneNumber"], b["toPhoneNumber"]} == set(POOL[:2])
        assert 1000 <= a["accessCode"] <= 9999

        body = {"toPhoneNumber": a["toPhoneNumber"], "accessCode": a["accessCode"]}
        r = await stack.internal.post(MATCH, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["userData"] == {"order": "A1"}
        r = await stack.internal.post(MATCH, json=body)
        assert r.status_code == 404

        async with stack.rt.engine.begin() as conn:
            await conn.execute(
                sa.update(callin_requests)
                .where(callin_requests.c.id == b["id"])
                .values(expires_at=time.time() - 1)
            )
        r = await stack.internal.post(
            MATCH, json={"toPhoneNumber": b["toPhoneNumber"], "accessCode": b["accessCode"]}
        )
        assert r.status_code == 404
        r = await stack.internal.get("/admin/v1/call-in/requests", params={"tenant": "acme"})
        states = [x["state"] for x in r.json()["data"]["items"]]
        assert states == ["EXPIRED", "MATCHED"]


async def test_a_burst_over_the_call_in_limit_gets_429s_and_spares_other_tenants(
    settings_with: SettingsFactory,
) -> None:
    limit = 20
    settings = settings_with(callin_max_per_window=limit, callin_window_seconds=3600)
    async with started_stack(settings) as stack:
        acme = await stack.tenant("acme")
        globex = await stack.tenant("globex")
        await put_group(stack, "acme", "support")
        await put_group(stack, "globex", "support")
        big = {f"k{i}": "x" * 3_500 for i in range(4)}  # close to the userData bound
        burst = await asyncio.gather(
            *(create(stack, acme, groupName="support", userData=big) for _ in range(3 * limit))
        )
        codes = [r.status_code for r in burst]
        assert codes.count(200) == limit and codes.count(429) == 2 * limit, codes
        refused = [r for r in burst if r.status_code == 429]
        assert all(
            message(r) == f"tenant 'acme' has reached its limit of {limit} call-in requests "
            "per 3600 s window"
            for r in refused
        )
        # Refused requests are not stored; the other tenant is served as before.
        r = await stack.internal.get("/admin/v1/call-in/requests", params={"tenant": "acme"})
        assert r.json()["data"]["total"] == limit
        assert (await create(stack, globex, groupName="support")).status_code == 200
        text = (await stack.internal.get("/metrics")).text
        assert value(parse(text), "CB_TTL_LIMIT_REACHED", tenant="acme") == 2 * limit
        assert value(parse(text), "CB_TTL_LIMIT_REACHED", tenant="globex") == 0
        assert value(parse(text), "ges_callin_created", tenant="acme") == limit

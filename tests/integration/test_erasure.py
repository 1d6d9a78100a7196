"""Erasure (GDPR) through the admin API on real PostgreSQL (and the embedded SQLite store):
one callback, or everything a tenant holds about a number; another tenant's data untouched,
every erasure audited, the number nowhere in clear in the audit or the logs."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from testbed.servers import RedisServer

from dialback.db.schema import (
    callback_events,
    callbacks,
    callin_requests,
    capacity_usage,
    erasure_audit,
    idempotency_keys,
)
from dialback.kit.phone import mask
from dialback.services.schemas import ServiceConfig
from dialback.settings import Settings
from tests.support.logs import logging_to
from tests.support.stack import (
    ADMIN_TOKEN,
    SettingsFactory,
    Stack,
    make_settings,
    started_stack,
    wait_for,
)

A = "/admin/v1"
HASH_KEY = "erasure-test-key"
NUMBER = "+14155550123"
ACTOR = "token:" + hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()[:12]
CAPACITY = {
    "businessHours": {"alwaysOpen": True},
    "capacity": {"slotMinutes": 60, "defaultCapacity": 5},
    "throttle": {"maxOpenPerNumber": 5},
}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def data(r: httpx.Response, code: int = 200) -> Any:
    assert r.status_code == code, r.text
    body = r.json()
    assert body["status"]["corrId"] == r.headers["x-correlation-id"]
    return body["data"]


def refused(r: httpx.Response, code: int, *fragments: str) -> None:
    assert r.status_code == code, r.text
    body = r.json()
    assert body["status"]["corrId"] == r.headers["x-correlation-id"]
    for f in fragments:
        assert f in body["status"]["message"], body["status"]["message"]


@pytest.fixture
def erasure_settings(settings_with: SettingsFactory) -> Settings:
    return settings_with(simulator="off", retention_enabled=False, erasure_hash_key=HASH_KEY)


@pytest.fixture
async def stack(erasure_settings: Settings) -> AsyncIterator[Stack]:
    async with started_stack(erasure_settings) as s:
        yield s


@pytest.fixture
def captured(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Every log line (debug and up, JSON) written inside the test, as one text."""
    path = tmp_path / "log.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with logging_to(fd, "debug", fmt="json"):
            yield path.read_text
    finally:
        os.close(fd)


async def book(stack: Stack, key: str, phone: str, desired: float | None = None) -> str:
    body: dict[str, Any] = {"serviceName": "sales", "phoneNumber": phone, "userData": {"k": 1}}
    if desired is not None:
        body["desiredTime"] = iso(desired)
    r = await stack.public.post(
        "/engagement/v3/callbacks/create", json=body, headers={"x-api-key": key}
    )
    return str(data(r)["id"])


async def callin(stack: Stack, key: str, phone: str) -> str:
    r = await stack.public.post(
        "/engagement/v3/call-in/requests/create",
        json={"groupName": "support", "fromPhoneNumber": phone, "userData": {"k": 1}},
        headers={"x-api-key": key},
    )
    return str(data(r)["id"])


async def state_of(stack: Stack, cid: str) -> str | None:
    async with stack.rt.engine.connect() as conn:
        q = sa.select(callbacks.c.state).where(callbacks.c.id == cid)
        return (await conn.execute(q)).scalar()


async def set_state(stack: Stack, cid: str, state: str) -> None:
    async with stack.rt.engine.begin() as conn:
        await conn.execute(callbacks.update().where(callbacks.c.id == cid).values(state=state))


async def ids_in(stack: Stack, table: sa.Table, ids: list[str], col: str = "id") -> set[str]:
    async with stack.rt.engine.connect() as conn:
        q = sa.select(table.c[col]).where(table.c[col].in_(ids))
        return set((await conn.execute(q)).scalars())


async def event_count(stack: Stack, ids: list[str]) -> int:
    async with stack.rt.engine.connect() as conn:
        q = sa.select(sa.func.count()).where(callback_events.c.callback_id.in_(ids))
        return int((await conn.execute(q)).scalar() or 0)


async def audit_rows(stack: Stack) -> list[Any]:
    async with stack.rt.engine.connect() as conn:
        return list((await conn.execute(sa.select(erasure_audit))).all())


async def booked(stack: Stack) -> dict[float, int]:
    """Places taken per slot start, all services together."""
    async with stack.rt.engine.connect() as conn:
        rows = (await conn.execute(sa.select(capacity_usage))).all()
    out: dict[float, int] = {}
    for r in rows:
        out[r.slot_start] = out.get(r.slot_start, 0) + r.booked
    return out


async def tenants_with_groups(stack: Stack) -> tuple[str, str]:
    cfg = ServiceConfig.model_validate(CAPACITY)
    acme = await stack.tenant("acme", config=cfg)
    globex = await stack.tenant("globex", config=cfg)
    for t in ("acme", "globex"):
        r = await stack.internal.put(
            f"{A}/tenants/{t}/callin-groups/support",
            json={"numbers": ["+14155550100"], "accessCode": {"enabled": False}},
        )
        assert r.status_code in (200, 201), r.text
    return acme, globex


async def test_erasing_a_number_removes_all_the_tenant_holds_and_nothing_else(
    stack: Stack, captured: Callable[[], str]
) -> None:
    acme, globex = await tenants_with_groups(stack)
    slot = (time.time() // 3600 + 3) * 3600
    queued = await book(stack, acme, NUMBER)
    await wait_for(lambda: _in_state(stack, queued, "QUEUED"))
    scheduled = await book(stack, acme, "+1 415-555-0123", desired=slot + 60)
    done = await book(stack, acme, NUMBER, desired=slot + 120)
    async with stack.rt.engine.begin() as conn:  # a finished one, its place already given back
        await conn.execute(
            callbacks.update()
            .where(callbacks.c.id == done)
            .values(state="COMPLETED", reason="answered", completed_at=time.time())
        )
        await conn.execute(capacity_usage.update().values(booked=capacity_usage.c.booked - 1))
    other_number = await book(stack, acme, "+14155550199", desired=slot + 180)
    other_tenant = await book(stack, globex, NUMBER, desired=slot + 60)
    other_queued = await book(stack, globex, NUMBER)
    await wait_for(lambda: _in_state(stack, other_queued, "QUEUED"))
    mine_ci = await callin(stack, acme, NUMBER)
    kept_ci = [await callin(stack, acme, "+14155550199"), await callin(stack, globex, NUMBER)]
    assert await booked(stack) == {slot: 3}  # acme: scheduled + other_number; globex: 1
    gone = [queued, scheduled, done]
    history = await event_count(stack, gone)
    assert history >= 1  # the queued one's SCHEDULED -> QUEUED at least

    r = await stack.internal.post(
        f"{A}/tenants/acme/erasure", json={"phoneNumber": "(415) 555-0123"}
    )
    out = data(r)
    assert out["erased"] == {
        "callbacks": 3,
        "openCallbacksCancelled": 2,
        "callbackEvents": history,
        "callInRequests": 1,
        "capacityReleased": 1,
        "streamEntries": 1,
    }
    assert await ids_in(stack, callbacks, gone) == set()
    assert await ids_in(stack, callback_events, gone, "callback_id") == set()
    assert await ids_in(stack, callbacks, [other_number, other_tenant, other_queued]) == {
        other_number,
        other_tenant,
        other_queued,
    }
    assert await ids_in(stack, callin_requests, [mine_ci, *kept_ci]) == set(kept_ci)
    # acme's scheduled place given back; globex's and acme's other number's stay.
    assert await booked(stack) == {slot: 2}
    # The queued one is withdrawn from the routing engine.
    entries = await stack.rt.transport.client.xrange(stack.rt.settings.routing_stream)  # type: ignore[attr-defined]
    cancels = [f for _i, f in entries if f.get("type") == "cancel"]
    assert [c["id"] for c in cancels] == [queued]
    # Its dispatch entry (number, userData) is gone from the stream; globex's is not.
    dispatched = [f["id"] for _i, f in entries if f.get("type") == "callback"]
    assert dispatched == [other_queued]

    [row] = await audit_rows(stack)
    assert row.kind == "phone_number" and row.tenant_name == "acme" and row.actor == ACTOR
    assert row.counts == out["erased"] and row.callback_id is None
    assert row.phone_masked == mask(NUMBER) and "4155550123" not in row.phone_masked
    assert (
        row.phone_hash == hmac.new(HASH_KEY.encode(), NUMBER.encode(), hashlib.sha256).hexdigest()
    )
    assert row.corr_id == r.headers["x-correlation-id"]
    assert out["audit"]["id"] == row.id and out["audit"]["actor"] == ACTOR
    clear = ("4155550123", "555-0123", "555 0123", ADMIN_TOKEN)
    for value in row:
        assert not any(c in str(value) for c in clear), value

    page = data(await stack.internal.get(f"{A}/erasure-audit", params={"tenant": "acme"}))
    assert page["total"] == 1 and page["items"] == [out["audit"]]
    assert data(await stack.internal.get(f"{A}/erasure-audit?tenant=globex"))["total"] == 0
    assert stack.rt.metrics.ges_erasures_total.value(("phone_number",)) == 1

    text = captured()
    assert "phone number erased" in text
    assert not any(c in text for c in clear)

    # Erasing it again finds nothing (and says so), and is audited again.
    again = data(
        await stack.internal.post(f"{A}/tenants/acme/erasure", json={"phoneNumber": NUMBER})
    )
    assert again["erased"]["callbacks"] == 0 and again["erased"]["callInRequests"] == 0
    assert len(await audit_rows(stack)) == 2


async def _in_state(stack: Stack, cid: str, state: str) -> bool:
    return await state_of(stack, cid) == state


async def test_a_number_an_agent_is_calling_is_not_erased_until_done(stack: Stack) -> None:
    acme, _ = await tenants_with_groups(stack)
    slot = (time.time() // 3600 + 3) * 3600
    busy = await book(stack, acme, NUMBER)
    await wait_for(lambda: _in_state(stack, busy, "QUEUED"))
    await set_state(stack, busy, "PROCESSING")
    waiting = await book(stack, acme, NUMBER, desired=slot + 60)
    ci = await callin(stack, acme, NUMBER)

    r = await stack.internal.post(f"{A}/tenants/acme/erasure", json={"phoneNumber": NUMBER})
    refused(r, 409, "PROCESSING")
    assert await ids_in(stack, callbacks, [busy, waiting]) == {busy, waiting}
    assert await ids_in(stack, callin_requests, [ci]) == {ci}
    assert await booked(stack) == {slot: 1}
    assert await audit_rows(stack) == []


async def test_bad_erasure_requests_are_4xx_naming_the_problem(stack: Stack) -> None:
    await tenants_with_groups(stack)
    url = f"{A}/tenants/acme/erasure"
    refused(await stack.internal.post(url, json={}), 400, "phoneNumber")
    refused(
        await stack.internal.post(url, json={"phoneNumber": "not a number"}), 400, "phoneNumber"
    )
    refused(
        await stack.internal.post(url, json={"phoneNumber": NUMBER, "defaultCountry": "G1"}),
        400,
        "defaultCountry",
    )
    refused(await stack.internal.post(url, json={"phoneNumber": NUMBER, "x": 1}), 400, "x")
    refused(
        await stack.internal.post(f"{A}/tenants/nobody/erasure", json={"phoneNumber": NUMBER}),
        404,
        "nobody",
    )
    r = await stack.internal.post(url, json={"phoneNumber": NUMBER}, headers={"authorization": ""})
    refused(r, 401)
    refused(await stack.internal.delete(f"{A}/callbacks/nope"), 404, "no callback")
    refused(await stack.internal.get(f"{A}/erasure-audit?limit=0"), 400, "limit")
    assert await audit_rows(stack) == []


async def test_a_national_number_is_read_with_the_tenants_default_country(stack: Stack) -> None:
    cfg = ServiceConfig.model_validate(
        {"businessHours": {"alwaysOpen": True}, "validation": {"defaultCountry": "GB"}}
    )
    key = await stack.tenant("acme", config=cfg)
    london = await book(stack, key, "020 7946 0018", desired=time.time() + 7200)
    out = data(
        await stack.internal.post(
            f"{A}/tenants/acme/erasure", json={"phoneNumber": "020 7946 0018"}
        )
    )
    assert out["erased"]["callbacks"] == 1
    assert await ids_in(stack, callbacks, [london]) == set()


@pytest.fixture(params=["postgresql", "sqlite"])
async def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, settings_with: SettingsFactory
) -> AsyncIterator[Stack]:
    if request.param == "sqlite":
        settings = make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
            retention_enabled=False,
            simulator="off",
        )
    else:
        settings = settings_with(simulator="off", retention_enabled=False)
    async with started_stack(settings) as s:
        yield s


async def test_deleting_one_callback(any_store: Stack) -> None:
    s = any_store
    key = await s.tenant("acme", config=ServiceConfig.model_validate(CAPACITY))
    slot = (time.time() // 3600 + 3) * 3600
    scheduled = await book(s, key, NUMBER, desired=slot + 60)
    busy = await book(s, key, "+14155550124", desired=slot + 120)
    queued = await book(s, key, "+14155550125")
    await wait_for(lambda: _in_state(s, queued, "QUEUED"))
    await set_state(s, busy, "PROCESSING")
    assert await booked(s) == {slot: 2}

    out = data(await s.internal.delete(f"{A}/callbacks/{scheduled}"))
    assert out["erased"] == {
        "callbacks": 1,
        "openCallbacksCancelled": 1,
        "callbackEvents": 1,  # its creation (the cancel before the erasure records nothing)
        "capacityReleased": 1,
        "streamEntries": 0,
    }
    assert await booked(s) == {slot: 1}
    assert out["audit"]["kind"] == "callback" and out["audit"]["callbackId"] == scheduled
    assert out["audit"]["phoneNumberMasked"] == mask(NUMBER)
    assert out["audit"]["phoneNumberHash"] is None  # no DIALBACK_ERASURE_HASH_KEY
    assert out["audit"]["actor"] == ACTOR and out["audit"]["tenant"] == "acme"
    refused(await s.internal.get(f"{A}/callbacks/{scheduled}"), 404)
    refused(await s.internal.delete(f"{A}/callbacks/{scheduled}"), 404, "no callback")

    out = data(await s.internal.delete(f"{A}/callbacks/{queued}"))
    assert out["erased"]["openCallbacksCancelled"] == 1 and out["erased"]["callbackEvents"] >= 1
    assert await ids_in(s, callback_events, [queued], "callback_id") == set()

    refused(await s.internal.delete(f"{A}/callbacks/{busy}"), 409, "PROCESSING")
    await set_state(s, busy, "COMPLETED")
    out = data(await s.internal.delete(f"{A}/callbacks/{busy}"))
    assert out["erased"]["openCallbacksCancelled"] == 0 and out["erased"]["capacityReleased"] == 0

    page = data(await s.internal.get(f"{A}/erasure-audit"))
    assert page["total"] == 3
    assert [i["callbackId"] for i in page["items"]] == [busy, queued, scheduled]
    assert s.rt.metrics.ges_erasures_total.value(("callback",)) == 3


async def test_an_erased_booking_is_not_answered_again_by_its_idempotency_key(
    any_store: Stack,
) -> None:
    # The key booked a callback that is erased: a retry with it must not answer the erased id
    # as if it were booked (nor keep the request's hash, which covers the number).
    s = any_store
    key = await s.tenant("acme", config=ServiceConfig.model_validate(CAPACITY))
    body = {"serviceName": "sales", "phoneNumber": NUMBER, "desiredTime": iso(time.time() + 7200)}
    headers = {"x-api-key": key, "Idempotency-Key": "order-1001"}
    create = "/engagement/v3/callbacks/create"
    first = str(data(await s.public.post(create, json=body, headers=headers))["id"])
    assert str(data(await s.public.post(create, json=body, headers=headers))["id"]) == first
    assert await ids_in(s, idempotency_keys, [first], "callback_id") == {first}

    data(await s.internal.delete(f"{A}/callbacks/{first}"))
    assert await ids_in(s, idempotency_keys, [first], "callback_id") == set()
    again = str(data(await s.public.post(create, json=body, headers=headers))["id"])
    assert again != first
    assert await state_of(s, again) == "SCHEDULED"


async def test_an_erasure_with_the_routing_redis_down_is_a_503_that_changes_nothing(
    pg_url: str, redis_url: str
) -> None:
    routing = RedisServer().start()
    try:
        settings = make_settings(
            database_url=pg_url,
            redis_url=redis_url,
            routing_redis_url=routing.url,
            simulator="off",
            retention_enabled=False,
        )
        async with started_stack(settings) as s:
            key = await s.tenant("acme", config=ServiceConfig.model_validate(CAPACITY))
            queued = await book(s, key, NUMBER)
            await wait_for(lambda: _in_state(s, queued, "QUEUED"))
            routing.stop()
            for r in (
                await s.internal.delete(f"{A}/callbacks/{queued}"),
                await s.internal.post(f"{A}/tenants/acme/erasure", json={"phoneNumber": NUMBER}),
            ):
                refused(r, 503)
            assert await state_of(s, queued) == "QUEUED"
            assert await event_count(s, [queued]) >= 1
            assert await audit_rows(s) == []
    finally:
        routing.discard()

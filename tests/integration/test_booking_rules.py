"""Booking rules on the public API: desired time, capacity and 429 proposals, throttles, retrieve.

Everything runs against real PostgreSQL and Redis (the ``stack`` fixture).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa

from dialback.db.schema import callbacks, capacity_usage
from tests.support.public_api import (
    ALL_DAYS,
    API,
    NY,
    assert_error,
    config,
    local,
    next_offset_change,
    z,
)
from tests.support.stack import SettingsFactory, Stack, make_settings, started_stack, wait_for


def phone(i: int) -> str:
    return f"+1415555{i:04d}"


def utc_today() -> date:
    return datetime.now(UTC).date()


async def create(
    stack: Stack, key: str, number: str = "+14155550100", **body: Any
) -> httpx.Response:
    body.setdefault("serviceName", "sales")
    if isinstance(body.get("desiredTime"), float | int):
        body["desiredTime"] = z(body["desiredTime"])
    return await stack.public.post(
        f"{API}/callbacks/create", json={"phoneNumber": number, **body}, headers={"x-api-key": key}
    )


async def post(stack: Stack, key: str, op: str, cid: str) -> httpx.Response:
    return await stack.public.post(
        f"{API}/callbacks/{op}", json={"id": cid}, headers={"x-api-key": key}
    )


async def away_from_boundary(period: float, margin: float = 3.0) -> None:
    """Sleep past the end of a fixed counting window when it is about to roll over."""
    left = period - time.time() % period
    if left < margin:
        await asyncio.sleep(left + 0.05)


# --- desired time ------------------------------------------------------------------------------


async def test_desired_time_in_the_past_is_refused(stack: Stack) -> None:
    key = await stack.tenant()
    r = await create(stack, key, desiredTime=time.time() - 3600)
    assert_error(r, 400, "desiredTime: is in the past")
    # A few seconds late is still "now": an immediate callback.
    r = await create(stack, key, desiredTime=time.time() - 5)
    assert r.status_code == 200, r.text


async def test_desired_time_outside_business_hours_names_the_next_opening(stack: Stack) -> None:
    weekdays = {d: [{"start": "09:00", "end": "17:00"}] for d in ALL_DAYS[:5]}
    key = await stack.tenant(config=config(businessHours={"timezone": "UTC", "weekly": weekdays}))
    day = utc_today() + timedelta(days=2)
    while day.weekday() != 5:  # a Saturday at least two days ahead
        day += timedelta(days=1)
    monday = day + timedelta(days=2)
    r = await create(stack, key, desiredTime=local(day, "12:00", "UTC"))
    body = assert_error(r, 400, "desiredTime: is outside the business hours of 'sales'")
    assert body["status"]["message"].endswith(
        f"the next opening is {z(local(monday, '09:00', 'UTC'))}"
    )
    r = await create(stack, key, desiredTime=local(monday, "16:59", "UTC"))
    assert r.status_code == 200, r.text
    r = await create(stack, key, number=phone(1), desiredTime=local(monday, "17:00", "UTC"))
    assert_error(r, 400, "desiredTime: is outside the business hours")


async def test_desired_time_beyond_the_booking_horizon_is_refused(stack: Stack) -> None:
    key = await stack.tenant()
    horizon = stack.rt.settings.booking_horizon_days
    r = await create(stack, key, desiredTime=time.time() + (horizon + 1) * 86400)
    assert_error(r, 400, f"desiredTime: is more than {horizon} days ahead")
    r = await create(stack, key, desiredTime=time.time() + (horizon - 1) * 86400)
    assert r.status_code == 200, r.text


async def test_malformed_desired_times_are_400_not_500(stack: Stack) -> None:
    key = await stack.tenant()
    for value in (
        "tomorrow",
        "2027-02-30T10:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
    ):
        r = await create(stack, key, desiredTime=value)
        assert_error(r, 400, "desiredTime: ")


async def test_immediate_create_while_closed_is_refused(stack: Stack) -> None:
    never = config(businessHours={"timezone": "UTC", "weekly": {}})
    key = await stack.tenant(service="never", config=never)
    r = await create(stack, key, serviceName="never")
    assert_error(r, 400, "serviceName: service 'never' is closed now")
    today = utc_today()
    closed = config(
        businessHours={
            "timezone": "UTC",
            "weekly": {d: [{"start": "00:00", "end": "24:00"}] for d in ALL_DAYS},
            "closedDates": [str(today), str(today + timedelta(days=1))],
        }
    )
    key = await stack.tenant(service="closed", config=closed)
    r = await create(stack, key, serviceName="closed")
    body = assert_error(r, 400, "serviceName: service 'closed' is closed now")
    reopens = local(today + timedelta(days=2), "00:00", "UTC")
    assert f"it opens at {z(reopens)}" in body["status"]["message"]
    # ... but a scheduled callback for when it is open is fine.
    r = await create(stack, key, serviceName="closed", desiredTime=reopens + 600)
    assert r.status_code == 200, r.text


async def test_services_without_immediate_or_scheduled_callbacks(stack: Stack) -> None:
    key = await stack.tenant(service="later", config=config(immediateCallbackEnabled=False))
    await stack.tenant(service="now", config=config(scheduledCallbackEnabled=False))
    r = await create(stack, key, serviceName="later")
    assert_error(r, 400, "serviceName: service 'later' does not offer immediate callbacks")
    r = await create(stack, key, serviceName="later", desiredTime=time.time() + 3600)
    assert r.status_code == 200, r.text
    r = await create(stack, key, serviceName="now", desiredTime=time.time() + 3600)
    assert_error(r, 400, "desiredTime: service 'now' does not offer scheduled callbacks")
    r = await create(stack, key, serviceName="now")
    assert r.status_code == 200, r.text
    r = await create(stack, key, serviceName="nope")
    assert_error(r, 400, "serviceName: no service named 'nope'")


async def test_numbers_are_validated_and_stored_in_e164(stack: Stack) -> None:
    rule = {
        "defaultCountry": "GB",
        "allowedCountries": ["GB"],
        "blockedPatterns": [r"^\+44207946001[0-5]$"],
    }
    key = await stack.tenant(config=config(validation=rule))
    r = await create(stack, key, number="020 7946 0018", desiredTime=time.time() + 3600)
    assert r.status_code == 200, r.text
    data = (await post(stack, key, "retrieve", r.json()["data"]["id"])).json()["data"]
    assert data["phoneNumber"] == "+442079460018"
    assert_error(await create(stack, key, number="12"), 400, "phoneNumber: impossible phone number")
    assert_error(
        await create(stack, key, number="+1 415 555 0123"),
        400,
        "phoneNumber: numbers in US are not allowed",
    )
    assert_error(
        await create(stack, key, number="020 7946 0012"), 400, "phoneNumber: this number is blocked"
    )
    assert_error(
        await create(stack, key, number="09012 345678"), 400, "phoneNumber: premium-rate numbers"
    )
    assert_error(await create(stack, key, number="x" * 33), 400, "phoneNumber: ")


# --- capacity and 429 --------------------------------------------------------------------------


async def test_full_slot_answers_429_with_proposals_as_a_map_of_strings(stack: Stack) -> None:
    cfg = config(
        businessHours={"alwaysOpen": True, "timezone": NY},
        capacity={"slotMinutes": 30, "defaultCapacity": 2},
    )
    key = await stack.tenant(config=cfg)
    day = datetime.now(ZoneInfo(NY)).date() + timedelta(days=3)
    nxt = day + timedelta(days=1)
    for i, hhmm in enumerate(("23:05", "23:20")):
        r = await create(stack, key, number=phone(i), desiredTime=local(day, hhmm, NY))
        assert r.status_code == 200, r.text
    r = await create(stack, key, number=phone(9), desiredTime=local(day, "23:10", NY))
    body = assert_error(
        r, 429, f"desiredTime: the slot starting {z(local(day, '23:00', NY))} is full"
    )
    # GES's SDKs type data.slots as HashData (map<string, string>): utcTime -> the slot's
    # remaining capacity as a decimal string.
    assert body["data"]["slots"] == {
        z(local(day, "23:30", NY)): "2",
        **{z(local(nxt, hhmm, NY)): "2" for hhmm in ("00:00", "00:30", "01:00", "01:30")},
    }
    # Fill 23:30 as well: the first proposal moves on to the next slot with room.
    for i in (3, 4):
        r = await create(stack, key, number=phone(i), desiredTime=local(day, "23:45", NY))
        assert r.status_code == 200, r.text
    r = await create(stack, key, number=phone(9), desiredTime=local(day, "23:10", NY))
    slots = assert_error(r, 429, "desiredTime: the slot starting")["data"]["slots"]
    assert list(slots) == [
        z(local(nxt, hhmm, NY)) for hhmm in ("00:00", "00:30", "01:00", "01:30", "02:00")
    ]
    # Every proposal really can be booked, as often as its capacity says.
    for n, (utc_time, capacity) in enumerate(slots.items()):
        for k in range(int(capacity)):
            r = await create(stack, key, number=phone(20 + 2 * n + k), desiredTime=utc_time)
            assert r.status_code == 200, r.text


async def test_proposals_skip_closed_hours(stack: Stack) -> None:
    weekly = {d: [{"start": "09:00", "end": "10:00"}] for d in ALL_DAYS}
    cfg = config(
        businessHours={"timezone": "UTC", "weekly": weekly},
        capacity={"slotMinutes": 60, "defaultCapacity": 1},
    )
    key = await stack.tenant(config=cfg)
    day = utc_today() + timedelta(days=2)
    assert (
        await create(stack, key, number=phone(1), desiredTime=local(day, "09:15", "UTC"))
    ).status_code == 200
    r = await create(stack, key, number=phone(2), desiredTime=local(day, "09:30", "UTC"))
    slots = assert_error(r, 429, "desiredTime: the slot starting")["data"]["slots"]
    expected = [day + timedelta(days=i) for i in range(1, 6)]
    assert slots == {z(local(d, "09:00", "UTC")): "1" for d in expected}


async def test_concurrent_creates_never_overbook(stack: Stack) -> None:
    key = await stack.tenant(config=config(capacity={"slotMinutes": 60, "defaultCapacity": 5}))
    day = utc_today() + timedelta(days=2)
    desired = local(day, "10:20", "UTC")
    results = await asyncio.gather(
        *(create(stack, key, number=phone(i), desiredTime=desired) for i in range(20))
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 5 + [429] * 15, [
        r.text for r in results if r.status_code not in (200, 429)
    ]
    slot = local(day, "10:00", "UTC")
    async with stack.rt.engine.connect() as conn:
        booked = (
            await conn.execute(
                sa.select(capacity_usage.c.booked).where(capacity_usage.c.slot_start == slot)
            )
        ).scalar()
        rows = (
            await conn.execute(sa.select(sa.func.count()).where(callbacks.c.slot_start == slot))
        ).scalar()
    assert booked == 5
    assert rows == 5


async def test_cancelling_a_scheduled_callback_frees_its_place(stack: Stack) -> None:
    key = await stack.tenant(config=config(capacity={"slotMinutes": 30, "defaultCapacity": 1}))
    desired = local(utc_today() + timedelta(days=2), "10:00", "UTC")
    first = await create(stack, key, number=phone(1), desiredTime=desired)
    assert first.status_code == 200, first.text
    assert_error(
        await create(stack, key, number=phone(2), desiredTime=desired), 429, "desiredTime: the slot"
    )
    cid = first.json()["data"]["id"]
    assert (await post(stack, key, "cancel", cid)).status_code == 200
    assert_error(await post(stack, key, "cancel", cid), 400, "callback is COMPLETED (cancelled)")
    r = await create(stack, key, number=phone(2), desiredTime=desired)
    assert r.status_code == 200, r.text
    assert_error(
        await create(stack, key, number=phone(3), desiredTime=desired), 429, "desiredTime: the slot"
    )


async def test_zero_capacity_and_unlimited_slots(stack: Stack) -> None:
    weekly = {d: [{"start": "12:00", "end": "13:00", "capacity": 0}] for d in ALL_DAYS}
    key = await stack.tenant(config=config(capacity={"slotMinutes": 60, "weekly": weekly}))
    day = utc_today() + timedelta(days=2)
    r = await create(stack, key, number=phone(1), desiredTime=local(day, "12:30", "UTC"))
    slots = assert_error(r, 429, "desiredTime: the slot starting")["data"]["slots"]
    # The next slot has no limit: "-1" stands for its capacity.
    assert next(iter(slots.items())) == (z(local(day, "13:00", "UTC")), "-1")
    for i in range(5):  # no defaultCapacity: unlimited
        r = await create(stack, key, number=phone(10 + i), desiredTime=local(day, "14:00", "UTC"))
        assert r.status_code == 200, r.text


async def test_always_check_capacity_applies_to_near_desired_times(stack: Stack) -> None:
    key = await stack.tenant(config=config(capacity={"defaultCapacity": 0}))
    soon = time.time() + 10
    r = await create(stack, key, number=phone(1), desiredTime=soon, alwaysCheckCapacity=True)
    assert_error(r, 429, "desiredTime: the slot starting")
    r = await create(stack, key, number=phone(1), desiredTime=soon)
    assert r.status_code == 200, r.text


async def test_bookings_in_the_repeated_hour_use_separate_slots(
    settings_with: SettingsFactory,
) -> None:
    settings = settings_with(
        simulator="off",
        booking_horizon_days=400,
    )
    day = next_offset_change(NY, backwards=True)
    weekly = {ALL_DAYS[day.weekday()]: [{"start": "00:00", "end": "04:00"}]}
    cfg = config(
        businessHours={"timezone": NY, "weekly": weekly},
        capacity={"slotMinutes": 60, "defaultCapacity": 1},
    )
    async with started_stack(settings) as stack:
        key = await stack.tenant(config=cfg)
        first = local(day, "01:30", NY, fold=0)
        second = local(day, "01:30", NY, fold=1)
        assert second - first == 3600
        assert (await create(stack, key, number=phone(1), desiredTime=first)).status_code == 200
        assert (await create(stack, key, number=phone(2), desiredTime=second)).status_code == 200
        r = await create(stack, key, number=phone(3), desiredTime=local(day, "01:10", NY, fold=0))
        slots = assert_error(r, 429, f"desiredTime: the slot starting {z(first - 1800)}")["data"][
            "slots"
        ]
        assert list(slots.items())[:2] == [(z(local(day, h, NY)), "1") for h in ("02:00", "03:00")]


# --- throttles ---------------------------------------------------------------------------------


async def test_tenant_throttle(stack: Stack) -> None:
    key = await stack.tenant(settings={"throttle": {"maxCallbacks": 3, "windowSeconds": 60}})
    await away_from_boundary(60)
    later = time.time() + 3600
    for i in range(3):
        r = await create(stack, key, number=phone(i), desiredTime=later)
        assert r.status_code == 200, r.text
    before = stack.rt.metrics.CB_TTL_LIMIT_REACHED.value(("acme",))
    r = await create(stack, key, number=phone(7), desiredTime=later)
    assert_error(r, 429, "tenant 'acme' has reached its limit of 3 callbacks per window")
    assert stack.rt.metrics.CB_TTL_LIMIT_REACHED.value(("acme",)) == before + 1
    # Another tenant is not affected.
    other = await stack.tenant("globex")
    assert (await create(stack, other, number=phone(7), desiredTime=later)).status_code == 200


async def test_refused_requests_do_not_consume_the_tenant_allowance(stack: Stack) -> None:
    cfg = config(capacity={"defaultCapacity": 1}, throttle={"maxOpenPerNumber": 1})
    key = await stack.tenant(
        config=cfg, settings={"throttle": {"maxCallbacks": 3, "windowSeconds": 60}}
    )
    await away_from_boundary(60, margin=5)
    day = utc_today() + timedelta(days=2)
    full = local(day, "10:00", "UTC")
    assert (await create(stack, key, number=phone(0), desiredTime=full)).status_code == 200
    for i in range(4):  # refused after counting: full slot, open-number limit
        assert (await create(stack, key, number=phone(10 + i), desiredTime=full)).status_code == 429
        r = await create(stack, key, number=phone(0), desiredTime=full + 3600)
        assert_error(r, 429, "phoneNumber: already has 1 open callbacks")
    for _ in range(3):  # refused before counting
        assert (await create(stack, key, number="12", desiredTime=full)).status_code == 400
        assert (
            await create(stack, key, number=phone(20), desiredTime=time.time() - 3600)
        ).status_code == 400
    for i in (1, 2):
        r = await create(stack, key, number=phone(i), desiredTime=full + i * 3600)
        assert r.status_code == 200, r.text
    r = await create(stack, key, number=phone(3), desiredTime=full + 3 * 3600)
    assert_error(r, 429, "tenant 'acme' has reached its limit of 3")
    # The throttled request gave its unit back too: the window counter stays at the limit.
    client = stack.rt.counters.redis.client  # type: ignore[attr-defined]
    keys = await client.keys("dialback:ten:*")
    assert [int(await client.get(k)) for k in keys] == [3]


async def test_open_callbacks_per_number(stack: Stack) -> None:
    key = await stack.tenant(config=config(throttle={"maxOpenPerNumber": 2}))
    later = time.time() + 3600
    ids = []
    for number in ("+14155550123", "(415) 555-0123"):
        r = await create(stack, key, number=number, desiredTime=later)
        assert r.status_code == 200, r.text
        ids.append(r.json()["data"]["id"])
    before = stack.rt.metrics.CB_ENQUEUE_LIMIT_REACHED.value(("acme",))
    r = await create(stack, key, number="415-555-0123", desiredTime=later)
    assert_error(r, 429, "phoneNumber: already has 2 open callbacks (limit 2)")
    assert stack.rt.metrics.CB_ENQUEUE_LIMIT_REACHED.value(("acme",)) == before + 1
    assert (await create(stack, key, number=phone(1), desiredTime=later)).status_code == 200
    assert (await post(stack, key, "cancel", ids[0])).status_code == 200
    assert (await create(stack, key, number="+14155550123", desiredTime=later)).status_code == 200


async def test_concurrent_creates_respect_the_open_limit_per_number(stack: Stack) -> None:
    key = await stack.tenant(
        config=config(throttle={"maxOpenPerNumber": 1, "maxPerNumberPerDay": 100})
    )
    later = time.time() + 3600
    results = await asyncio.gather(
        *(create(stack, key, number=phone(5), desiredTime=later) for _ in range(10))
    )
    assert sorted(r.status_code for r in results) == [200] + [429] * 9


async def test_callbacks_per_number_per_day(stack: Stack) -> None:
    key = await stack.tenant(
        config=config(throttle={"maxOpenPerNumber": 10, "maxPerNumberPerDay": 3})
    )
    await away_from_boundary(86400, margin=10)
    later = time.time() + 3600
    ids = []
    for _ in range(3):
        r = await create(stack, key, number="+14155550123", desiredTime=later)
        assert r.status_code == 200, r.text
        ids.append(r.json()["data"]["id"])
    r = await create(stack, key, number="(415) 555-0123", desiredTime=later)
    assert_error(r, 429, "phoneNumber: reached the limit of 3 callbacks per day")
    # Cancelling does not give a booking back; other numbers are independent.
    assert (await post(stack, key, "cancel", ids[0])).status_code == 200
    assert_error(
        await create(stack, key, number="+14155550123", desiredTime=later),
        429,
        "phoneNumber: reached",
    )
    for _ in range(3):
        assert (await create(stack, key, number=phone(2), desiredTime=later)).status_code == 200


# --- retrieve ----------------------------------------------------------------------------------


async def test_retrieve_fields_follow_the_state(settings_with: SettingsFactory) -> None:
    settings = settings_with(
        simulator="off",
    )
    async with started_stack(settings) as stack:
        key = await stack.tenant(config=config(throttle={"maxOpenPerNumber": 5}))

        async def retrieve(cid: str) -> dict:
            r = await post(stack, key, "retrieve", cid)
            assert r.status_code == 200, r.text
            return r.json()["data"]

        scheduled = (await create(stack, key, desiredTime=time.time() + 3600)).json()["data"]["id"]
        queued: list[str] = []
        for prio in (0, 0, 5):
            r = await create(stack, key, number=phone(prio + len(queued)), priority=prio)
            assert r.status_code == 200, r.text
            cid = r.json()["data"]["id"]
            queued.append(cid)

            async def is_queued(cid: str = cid) -> dict | None:
                data = await retrieve(cid)
                return data if data["callbackState"] == "QUEUED" else None

            await wait_for(is_queued)

        data = await retrieve(scheduled)
        assert data["callbackState"] == "SCHEDULED"
        assert not {"positionInQueue", "estimatedWaitTime", "callbackReason"} & data.keys()
        views = [await retrieve(cid) for cid in queued]
        # priority first, then age
        assert [v["positionInQueue"] for v in views] == [2, 3, 1]
        assert all(v["estimatedWaitTime"] == -1 for v in views)  # no history yet
        assert all("callbackReason" not in v for v in views)

        assert (await post(stack, key, "cancel", queued[2])).status_code == 200
        done = await retrieve(queued[2])
        assert done["callbackState"] == "COMPLETED"
        assert done["callbackReason"] == "cancelled"
        assert not {"positionInQueue", "estimatedWaitTime"} & done.keys()
        assert [(await retrieve(cid))["positionInQueue"] for cid in queued[:2]] == [1, 2]


async def test_another_tenants_callback_reads_as_missing(stack: Stack) -> None:
    mine = await stack.tenant("acme")
    theirs = await stack.tenant("globex")
    r = await create(stack, theirs, desiredTime=time.time() + 3600)
    cid = r.json()["data"]["id"]
    missing = "00000000-0000-4000-8000-000000000000"
    for op in ("retrieve", "cancel"):
        a = assert_error(await post(stack, mine, op, cid), 404, "no callback with id")
        b = assert_error(await post(stack, mine, op, missing), 404, "no callback with id")
        assert a["status"]["message"].replace(cid, "ID") == b["status"]["message"].replace(
            missing, "ID"
        )
        assert a["data"] == b["data"] is None
    # the owner still sees and can cancel it
    assert (await post(stack, theirs, "retrieve", cid)).status_code == 200
    assert (await post(stack, theirs, "cancel", cid)).status_code == 200


async def test_concurrent_limits_hold_on_sqlite(tmp_path: Any) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite", simulator="off"
    )
    async with started_stack(settings) as stack:
        cfg = config(
            capacity={"slotMinutes": 60, "defaultCapacity": 3}, throttle={"maxOpenPerNumber": 1}
        )
        key = await stack.tenant(config=cfg)
        desired = local(utc_today() + timedelta(days=2), "10:20", "UTC")
        results = await asyncio.gather(
            *(create(stack, key, number=phone(i), desiredTime=desired) for i in range(10))
        )
        assert sorted(r.status_code for r in results) == [200] * 3 + [429] * 7
        later = desired + 3600
        results = await asyncio.gather(
            *(create(stack, key, number=phone(50), desiredTime=later) for _ in range(8))
        )
        assert sorted(r.status_code for r in results) == [200] + [429] * 7


async def test_retrieve_while_an_agent_handles_it(settings_with: SettingsFactory) -> None:
    settings = settings_with(
        simulator="on",
        sim_ring_seconds=1.0,
        sim_handle_seconds=2.0,
    )
    async with started_stack(settings) as stack:
        key = await stack.tenant()
        cid = (await create(stack, key)).json()["data"]["id"]
        seen: dict[str, dict] = {}

        async def completed() -> bool:
            data = (await post(stack, key, "retrieve", cid)).json()["data"]
            seen.setdefault(data["callbackState"], data)
            return data["callbackState"] == "COMPLETED"

        await wait_for(completed, timeout=20, interval=0.05)
        assert {"ROUTING", "PROCESSING"} <= seen.keys(), seen.keys()
        for state in ("ROUTING", "PROCESSING"):
            assert seen[state]["positionInQueue"] == 0
            assert seen[state]["estimatedWaitTime"] == 0
            assert "callbackReason" not in seen[state]
        assert seen["COMPLETED"]["callbackReason"] == "answered"
        assert not {"positionInQueue", "estimatedWaitTime"} & seen["COMPLETED"].keys()

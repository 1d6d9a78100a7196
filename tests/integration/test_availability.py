"""Availability, open-for, queue-status and estimated-wait-time on the public API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from dialback.services.schemas import ServiceConfig
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
from tests.support.stack import SettingsFactory, Stack, started_stack, wait_for

WEEKDAYS_9_TO_5 = {d: [{"start": "09:00", "end": "17:00"}] for d in ALL_DAYS[:5]}


def office(**kw: Any) -> ServiceConfig:
    """New York office hours, 30-minute slots of 2, 4 on Monday 09:00-10:00."""
    monday = {"mon": [{"start": "09:00", "end": "10:00", "capacity": 4}]}
    return config(
        businessHours={"timezone": NY, "weekly": WEEKDAYS_9_TO_5},
        capacity={"slotMinutes": 30, "defaultCapacity": 2, "weekly": monday},
        **kw,
    )


def next_monday(tz: str = NY) -> date:
    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=2)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return day


async def get(stack: Stack, key: str, path: str, **params: Any) -> httpx.Response:
    return await stack.public.get(f"{API}/{path}", params=params, headers={"x-api-key": key})


async def ok(stack: Stack, key: str, path: str, **params: Any) -> Any:
    r = await get(stack, key, path, **params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == {
        "code": 200,
        "message": "Successful",
        "corrId": r.headers["x-correlation-id"],
    }
    return body["data"]


async def book(stack: Stack, key: str, t: float, number: str) -> None:
    r = await stack.public.post(
        f"{API}/callbacks/create",
        json={"serviceName": "sales", "phoneNumber": number, "desiredTime": z(t)},
        headers={"x-api-key": key},
    )
    assert r.status_code == 200, r.text


# --- availability ------------------------------------------------------------------------------


async def test_availability_lists_slots_within_business_hours(stack: Stack) -> None:
    key = await stack.tenant(config=office())
    monday = next_monday()
    data = await ok(
        stack, key, "callbacks/availability/sales", start=z(local(monday, "00:00")), numberOfDays=1
    )
    assert data["durationMin"] == 30
    assert data["timezone"] == "UTC"
    starts = [local(monday, "09:00") + i * 1800 for i in range(16)]
    assert [s["utcTime"] for s in data["slots"]] == [z(t) for t in starts]
    assert [s["localTime"] for s in data["slots"]] == [
        datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds") for t in starts
    ]
    assert [(s["capacity"], s["total"]) for s in data["slots"]] == [(4, 4)] * 2 + [(2, 2)] * 14
    week = await ok(
        stack, key, "callbacks/availability/sales", start=z(local(monday, "00:00")), numberOfDays=7
    )
    assert len(week["slots"]) == 5 * 16  # closed at the weekend


async def test_availability_renders_local_time_in_the_requested_zone(stack: Stack) -> None:
    key = await stack.tenant(config=office())
    monday = next_monday()
    for zone in ("America/Los_Angeles", "Asia/Kolkata", NY):
        data = await ok(
            stack,
            key,
            "callbacks/availability/sales",
            start=z(local(monday, "00:00")),
            numberOfDays=1,
            timezone=zone,
        )
        assert data["timezone"] == zone
        first = data["slots"][0]
        assert first["utcTime"] == z(local(monday, "09:00"))
        assert (
            first["localTime"]
            == datetime.fromtimestamp(local(monday, "09:00"), ZoneInfo(zone)).isoformat()
        )


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe", "", "../../etc/passwd", "UTC\x00"])
async def test_bad_timezone_is_400_naming_timezone(stack: Stack, zone: str) -> None:
    key = await stack.tenant(config=office())
    assert_error(
        await get(stack, key, "callbacks/availability/sales", timezone=zone), 400, "timezone: "
    )
    assert_error(
        await get(stack, key, "callbacks/open-for/sales", timezone=zone), 400, "timezone: "
    )


async def test_report_busy(stack: Stack) -> None:
    key = await stack.tenant(config=office())
    monday = next_monday()
    ten, half_past = local(monday, "10:00"), local(monday, "10:30")
    await book(stack, key, ten, "+14155550101")
    await book(stack, key, ten + 900, "+14155550102")
    await book(stack, key, half_past, "+14155550103")
    params = {"start": z(local(monday, "09:00")), "end": z(local(monday, "12:00"))}
    data = await ok(stack, key, "callbacks/availability/sales", **params)
    listed = {s["utcTime"]: (s["capacity"], s["total"]) for s in data["slots"]}
    assert z(ten) not in listed  # full
    assert listed[z(half_past)] == (1, 2)
    assert len(listed) == 5
    busy = await ok(stack, key, "callbacks/availability/sales", reportBusy="true", **params)
    listed = {s["utcTime"]: (s["capacity"], s["total"]) for s in busy["slots"]}
    assert listed[z(ten)] == (0, 2)
    assert listed[z(half_past)] == (1, 2)
    assert len(listed) == 6
    assert_error(
        await get(stack, key, "callbacks/availability/sales", reportBusy="maybe"),
        400,
        "reportBusy: ",
    )


async def test_max_time_slots(stack: Stack) -> None:
    key = await stack.tenant(config=office())
    start = z(local(next_monday(), "00:00"))
    data = await ok(
        stack, key, "callbacks/availability/sales", start=start, numberOfDays=5, maxTimeSlots=3
    )
    assert [s["utcTime"] for s in data["slots"]] == [
        z(local(next_monday(), h)) for h in ("09:00", "09:30", "10:00")
    ]
    for bad in ("0", "-1", "lots"):
        assert_error(
            await get(stack, key, "callbacks/availability/sales", maxTimeSlots=bad),
            400,
            "maxTimeSlots: ",
        )


async def test_start_and_end_parsing(stack: Stack) -> None:
    key = await stack.tenant(config=office())
    monday = next_monday()
    ten, noon = local(monday, "10:00"), local(monday, "12:00")
    want = [z(ten + i * 1800) for i in range(4)]
    path = "callbacks/availability/sales"

    async def times(**params: Any) -> list[str]:
        return [s["utcTime"] for s in (await ok(stack, key, path, **params))["slots"]]

    assert await times(start=z(ten), end=z(noon)) == want
    assert await times(startMS=str(int(ten * 1000)), endMS=str(int(noon * 1000))) == want
    assert await times(start=z(ten), endMS=str(int(noon * 1000))) == want
    # offsets and naive (= UTC) times
    ny_ten = datetime.fromtimestamp(ten, ZoneInfo(NY)).isoformat()
    assert await times(start=ny_ten, end=z(noon)) == want
    naive = datetime.fromtimestamp(ten, UTC).replace(tzinfo=None).isoformat()
    assert await times(start=naive, end=z(noon)) == want
    # a start inside a slot includes that slot
    assert (await times(start=z(ten + 600), end=z(noon)))[0] == z(ten)
    # numberOfDays counts from start; an explicit end wins
    assert len(await times(start=z(ten), numberOfDays=1)) == 14 + 2  # to Tuesday 10:00
    assert await times(start=z(ten), end=z(noon), numberOfDays=3) == want


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "yesterday"}, "start: not an ISO-8601 time"),
        ({"end": "2027-02-30T00:00:00Z"}, "end: not an ISO-8601 time"),
        ({"startMS": "soon"}, "startMS: not an integer"),
        ({"endMS": "1.5"}, "endMS: not an integer"),
        ({"startMS": "-1"}, "startMS: out of range"),
        ({"startMS": "9" * 19}, "startMS: "),
        ({"start": "0001-01-01T00:00:00+01:00"}, "start: "),
        ({"start": "9999-12-31T23:59:59-14:00"}, "start: "),
        (
            {"start": "2027-01-10T00:00:00Z", "end": "2027-01-09T00:00:00Z"},
            "end: must be after start",
        ),
        (
            {"start": "2027-01-10T00:00:00Z", "end": "2027-01-10T00:00:00Z"},
            "end: must be after start",
        ),
        (
            {"start": "2027-01-01T00:00:00Z", "end": "2027-02-01T00:00:01Z"},
            "end: the range may span at most 31 days",
        ),
        ({"numberOfDays": "32"}, "numberOfDays: "),
        ({"numberOfDays": "0"}, "numberOfDays: "),
    ],
)
async def test_bad_availability_parameters_are_400(
    stack: Stack, params: dict, message: str
) -> None:
    key = await stack.tenant(config=office())
    assert_error(await get(stack, key, "callbacks/availability/sales", **params), 400, message)


async def test_31_days_is_the_longest_range(stack: Stack) -> None:
    key = await stack.tenant(config=office())
    start = local(next_monday(), "00:00")
    data = await ok(
        stack, key, "callbacks/availability/sales", start=z(start), end=z(start + 31 * 86400)
    )
    assert len(data["slots"]) > 20 * 16
    data = await ok(stack, key, "callbacks/availability/sales", start=z(start), numberOfDays=31)
    assert len(data["slots"]) > 20 * 16


async def test_unknown_service_and_missing_key(stack: Stack) -> None:
    key = await stack.tenant(config=office())
    for path in (
        "callbacks/availability/nope",
        "callbacks/open-for/nope",
        "callbacks/queue-status/nope",
    ):
        assert_error(await get(stack, key, path), 404, "no service named 'nope'")
    r = await stack.public.get(f"{API}/callbacks/availability/sales")
    assert_error(r, 401, "missing x-api-key")
    # another tenant's service is as unknown as a missing one
    other = await stack.tenant("globex", service="private", config=office())
    assert (await get(stack, other, "callbacks/availability/private")).status_code == 200
    assert_error(
        await get(stack, key, "callbacks/availability/private"), 404, "no service named 'private'"
    )


async def test_past_slots_are_not_offered(stack: Stack) -> None:
    key = await stack.tenant(config=config(capacity={"slotMinutes": 60, "defaultCapacity": 1}))
    now = time.time()
    data = await ok(
        stack, key, "callbacks/availability/sales", startMS=str(int((now - 2 * 86400) * 1000))
    )
    assert data["slots"] == []  # the whole default one-day range is in the past
    data = await ok(stack, key, "callbacks/availability/sales")
    first = datetime.fromisoformat(data["slots"][0]["utcTime"].replace("Z", "+00:00")).timestamp()
    # The slot under way is not offered (booking its start would be refused as past): the
    # first slot offered is the next one.
    assert now < first <= now + 3600 + 60
    assert len(data["slots"]) in (23, 24)


async def test_unlimited_slots_report_null_capacity(stack: Stack) -> None:
    key = await stack.tenant(config=config(capacity={"slotMinutes": 60}))
    data = await ok(stack, key, "callbacks/availability/sales", maxTimeSlots=2)
    assert [(s["capacity"], s["total"]) for s in data["slots"]] == [(None, None)] * 2
    assert data["durationMin"] == 60


@pytest.fixture
async def long_stack(stack_settings: Any) -> AsyncIterator[Stack]:
    """A stack that books up to 400 days ahead, so the next DST change is always in reach."""
    async with started_stack(stack_settings.model_copy(update={"booking_horizon_days": 400})) as s:
        yield s


@pytest.mark.parametrize(("backwards", "thirty", "sixty"), [(False, 6, 3), (True, 10, 5)])
async def test_availability_on_dst_days(
    long_stack: Stack, backwards: bool, thirty: int, sixty: int
) -> None:
    stack = long_stack
    day = next_offset_change(NY, backwards=backwards)
    weekly = {ALL_DAYS[day.weekday()]: [{"start": "00:00", "end": "04:00"}]}
    hours = {"timezone": NY, "weekly": weekly}
    key = await stack.tenant(
        service="sales", config=config(businessHours=hours, capacity={"slotMinutes": 30})
    )
    await stack.tenant(
        service="hourly", config=config(businessHours=hours, capacity={"slotMinutes": 60})
    )
    start = z(local(day, "00:00"))
    data = await ok(
        stack, key, "callbacks/availability/sales", start=start, numberOfDays=1, timezone=NY
    )
    assert len(data["slots"]) == thirty
    local_times = [s["localTime"][11:] for s in data["slots"]]
    if backwards:
        assert local_times[2:6] == [
            "01:00:00-04:00",
            "01:30:00-04:00",
            "01:00:00-05:00",
            "01:30:00-05:00",
        ]
    else:
        assert [t[:5] for t in local_times] == [
            "00:00",
            "00:30",
            "01:00",
            "01:30",
            "03:00",
            "03:30",
        ]
    hourly = await ok(stack, key, "callbacks/availability/hourly", start=start, numberOfDays=1)
    assert len(hourly["slots"]) == sixty
    opened = await ok(stack, key, "callbacks/open-for/sales", start=start)
    assert opened == {"openFor": (5 if backwards else 3) * 3600}


# --- open-for ----------------------------------------------------------------------------------


async def test_open_for(stack: Stack) -> None:
    key = await stack.tenant(config=office())
    await stack.tenant(service="always", config=config())
    await stack.tenant(service="never", config=config(businessHours={"weekly": {}}))
    nights = {
        "mon": [{"start": "22:00", "end": "24:00"}],
        "tue": [{"start": "00:00", "end": "02:00"}],
    }
    await stack.tenant(
        service="nights", config=config(businessHours={"timezone": NY, "weekly": nights})
    )
    monday = next_monday()
    assert await ok(stack, key, "callbacks/open-for/sales", start=z(local(monday, "10:00"))) == {
        "openFor": 7 * 3600
    }
    assert await ok(stack, key, "callbacks/open-for/sales", start=z(local(monday, "16:59"))) == {
        "openFor": 60
    }
    assert await ok(stack, key, "callbacks/open-for/sales", start=z(local(monday, "17:00"))) == {
        "openFor": 0
    }
    assert await ok(stack, key, "callbacks/open-for/sales", start=z(local(monday, "08:00"))) == {
        "openFor": 0
    }
    saturday = monday + timedelta(days=5)
    assert await ok(stack, key, "callbacks/open-for/sales", start=z(local(saturday, "12:00"))) == {
        "openFor": 0
    }
    assert await ok(stack, key, "callbacks/open-for/nights", start=z(local(monday, "23:00"))) == {
        "openFor": 3 * 3600
    }
    assert await ok(stack, key, "callbacks/open-for/always") == {"openFor": 8 * 86400}
    assert await ok(stack, key, "callbacks/open-for/never") == {"openFor": 0}
    assert_error(
        await get(stack, key, "callbacks/open-for/sales", start="noon"),
        400,
        "start: not an ISO-8601",
    )


# --- queue-status ------------------------------------------------------------------------------


async def test_queue_status_with_routing_engine(stack: Stack) -> None:
    key = await stack.tenant(config=config())
    await stack.tenant(service="later", config=config(immediateCallbackEnabled=False))
    await stack.tenant(service="now", config=config(scheduledCallbackEnabled=False))
    await stack.tenant(service="never", config=config(businessHours={"weekly": {}}))
    await stack.tenant(service="warmup", config=config())
    # Redis 7.0 lists a stream consumer only once it has been delivered an entry: one callback
    # through another service makes the simulator's consumer visible.
    r = await stack.public.post(
        f"{API}/callbacks/create",
        json={"serviceName": "warmup", "phoneNumber": "+14155550100"},
        headers={"x-api-key": key},
    )
    assert r.status_code == 200, r.text

    async def consumer_seen() -> bool:
        return await stack.rt.transport.active_consumers() > 0

    await wait_for(consumer_seen)
    data = await ok(stack, key, "callbacks/queue-status/sales")
    # -1 with offerImmediateCallback=true: agents are there, no traffic yet
    assert data == {"ewt": -1, "offerImmediateCallback": True, "offerScheduledCallback": True}
    assert await ok(stack, key, "callbacks/queue-status/later") == {
        "ewt": -1,
        "offerImmediateCallback": False,
        "offerScheduledCallback": True,
    }
    assert await ok(stack, key, "callbacks/queue-status/now") == {
        "ewt": -1,
        "offerImmediateCallback": True,
        "offerScheduledCallback": False,
    }
    closed = await ok(stack, key, "callbacks/queue-status/never")
    assert closed["offerImmediateCallback"] is False


async def test_queue_status_without_agents(settings_with: SettingsFactory) -> None:
    settings = settings_with(
        simulator="off",
    )
    async with started_stack(settings) as stack:
        key = await stack.tenant(config=config())
        # -1 with offerImmediateCallback=false: nobody is logged in
        assert await ok(stack, key, "callbacks/queue-status/sales") == {
            "ewt": -1,
            "offerImmediateCallback": False,
            "offerScheduledCallback": True,
        }


# --- estimated-wait-time -----------------------------------------------------------------------


async def test_estimated_wait_time_without_history(stack: Stack) -> None:
    key = await stack.tenant(config=config())
    await stack.tenant(service="support", config=config())

    async def consumer_seen() -> bool:
        return await stack.rt.transport.active_consumers() > 0

    await wait_for(consumer_seen)  # the simulator's heartbeat: agents are there
    unknown = {"estimatedWaitTime": -1, "resultCode": -1}
    for mode in ("mode1", "mode2", "mode3"):
        data = await ok(
            stack,
            key,
            "estimated-wait-time",
            **{"virtual-queues": "sales, support,ghost", "mode": mode},
        )
        assert data == [
            {"virtualQueue": "sales", **unknown, "message": "no estimate yet"},
            {"virtualQueue": "support", **unknown, "message": "no estimate yet"},
            {"virtualQueue": "ghost", **unknown, "message": "unknown virtual queue"},
        ]


async def test_estimated_wait_time_after_traffic(stack: Stack) -> None:
    key = await stack.tenant(config=config(throttle={"maxOpenPerNumber": 10}))
    ids = []
    for i in range(3):
        r = await stack.public.post(
            f"{API}/callbacks/create",
            json={"serviceName": "sales", "phoneNumber": f"+1415555{i:04d}"},
            headers={"x-api-key": key},
        )
        assert r.status_code == 200, r.text
        ids.append(r.json()["data"]["id"])

    async def all_completed() -> bool:
        for cid in ids:
            r = await stack.public.post(
                f"{API}/callbacks/retrieve", json={"id": cid}, headers={"x-api-key": key}
            )
            if r.json()["data"]["callbackState"] != "COMPLETED":
                return False
        return True

    await wait_for(all_completed, timeout=20)
    for mode in ("mode1", "mode2", "mode3"):
        (entry,) = await ok(
            stack, key, "estimated-wait-time", **{"virtual-queues": "sales", "mode": mode}
        )
        assert entry["message"] == "ok" and entry["resultCode"] == 0, (mode, entry)
        assert 0 <= entry["estimatedWaitTime"] < 60, (mode, entry)
    status = await ok(stack, key, "callbacks/queue-status/sales")
    assert 0 <= status["ewt"] < 60
    assert status["offerImmediateCallback"] is True


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "virtual-queues: field required"),
        ({"virtual-queues": ""}, "virtual-queues: "),
        ({"virtual-queues": " , ,"}, "virtual-queues: name at least one virtual queue"),
        (
            {"virtual-queues": ",".join(f"q{i}" for i in range(51))},
            "virtual-queues: at most 50 virtual queues",
        ),
        ({"virtual-queues": "sales", "mode": "mode4"}, "mode: "),
    ],
)
async def test_bad_estimated_wait_time_requests_are_400(
    stack: Stack, params: dict, message: str
) -> None:
    key = await stack.tenant(config=config())
    assert_error(await get(stack, key, "estimated-wait-time", **params), 400, message)


async def test_fifty_queues_are_allowed(stack: Stack) -> None:
    key = await stack.tenant(config=config())
    data = await ok(
        stack,
        key,
        "estimated-wait-time",
        **{"virtual-queues": ",".join(f"q{i}" for i in range(50))},
    )
    assert len(data) == 50
    assert {d["message"] for d in data} == {"unknown virtual queue"}


async def test_slots_beyond_the_booking_horizon_are_not_offered(stack: Stack) -> None:
    key = await stack.tenant(config=config(capacity={"slotMinutes": 60}))
    horizon = time.time() + stack.rt.settings.booking_horizon_days * 86400
    data = await ok(
        stack,
        key,
        "callbacks/availability/sales",
        startMS=str(int((horizon - 86400) * 1000)),
        numberOfDays=3,
    )
    last = data["slots"][-1]["utcTime"]
    assert (
        horizon - 3600
        <= datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
        <= horizon + 60
    )
    assert 23 <= len(data["slots"]) <= 25
    # and the last one offered can be booked
    r = await stack.public.post(
        f"{API}/callbacks/create",
        json={"serviceName": "sales", "phoneNumber": "+14155550100", "desiredTime": last},
        headers={"x-api-key": key},
    )
    assert r.status_code == 200, r.text


# --- GES client compatibility (issue #10) -------------------------------------------------------


async def test_a_start_without_offset_is_in_the_given_time_zone(stack: Stack) -> None:
    # Finding 5: open-for answered 21600 (16:00 read as UTC) instead of 3600.
    key = await stack.tenant(config=office())
    monday = next_monday()
    four_pm = f"{monday}T16:00:00"
    data = await ok(stack, key, "callbacks/open-for/sales", start=four_pm, timezone=NY)
    assert data == {"openFor": 3600}
    # Without timezone it stays UTC, as documented for start.
    utc = await ok(stack, key, "callbacks/open-for/sales", start=four_pm)
    assert utc == {"openFor": int(local(monday, "17:00") - local(monday, "16:00", "UTC"))}
    # Availability reads start and end the same way.
    slots = await ok(
        stack,
        key,
        "callbacks/availability/sales",
        start=f"{monday}T10:00:00",
        end=f"{monday}T11:00:00",
        timezone=NY,
    )
    assert [s["utcTime"] for s in slots["slots"]] == [
        z(local(monday, "10:00")),
        z(local(monday, "10:30")),
    ]
    assert slots["slots"][0]["localTime"].startswith(f"{monday}T10:00:00")
    assert_error(
        await get(stack, key, "callbacks/open-for/sales", start=four_pm, timezone="Mars/Base"),
        400,
        "timezone: ",
    )


async def test_mode2_without_agents_answers_result_code_minus_2(
    settings_with: SettingsFactory,
) -> None:
    # Finding 4: -1 meant both "no traffic yet" and "nobody logged in"; resultCode tells them
    # apart as GES's EstimatedWaitTime does.
    async with started_stack(settings_with(simulator="off")) as stack:
        key = await stack.tenant(config=config())
        (item,) = await ok(stack, key, "estimated-wait-time", **{"virtual-queues": "sales"})
        assert item == {
            "virtualQueue": "sales",
            "estimatedWaitTime": -1,
            "message": "no agents logged in",
            "resultCode": -2,
        }


async def _same_answer(stack: Stack, key: str, alias: str, current: str, **params: Any) -> Any:
    """The data of ``alias``, checked equal to the current route's (path from the host)."""
    answers = []
    for path in (alias, current):
        r = await stack.public.get(path, params=params, headers={"x-api-key": key})
        assert r.status_code == 200, (path, r.text)
        body = r.json()
        assert body["status"]["code"] == 200 and body["status"]["message"] == "Successful"
        answers.append(body["data"])
    assert answers[0] == answers[1], (alias, answers)
    return answers[0]


async def test_historical_paths_answer_as_their_current_routes(stack: Stack) -> None:
    # Finding 11: paths of earlier GES releases (reference §7.2, path history) are aliases.
    key = await stack.tenant(config=office())
    monday = next_monday()
    start = z(local(monday, "10:00"))
    open_for = f"{API}/callbacks/open-for/sales"
    for alias in (
        "/engagement/v3/callbacks/openfor/sales",
        "/interactions/v3/callbacks/openfor/sales",
    ):
        data = await _same_answer(stack, key, alias, open_for, start=start, timezone=NY)
        assert data == {"openFor": 7 * 3600}
    data = await _same_answer(
        stack,
        key,
        "/interactions/v3/callbacks/availability/sales",
        f"{API}/callbacks/availability/sales",
        start=start,
        numberOfDays=1,
        timezone=NY,
    )
    assert len(data["slots"]) == 16
    # The VQ in the path (before GES-492): the one EstimatedWaitTime item itself, as the
    # tutorials of that time read it (response.data.estimatedWaitTime).
    for mode in ("mode1", "mode2"):
        r = await stack.public.get(
            f"{API}/estimated-wait-time/virtual-queues/sales",
            params={"mode": mode},
            headers={"x-api-key": key},
        )
        assert r.status_code == 200, r.text
        (listed,) = await ok(
            stack, key, "estimated-wait-time", **{"virtual-queues": "sales", "mode": mode}
        )
        assert r.json()["data"] == listed
    # Errors and authentication are the current routes' too.
    assert_error(
        await stack.public.get(
            "/interactions/v3/callbacks/openfor/nope", headers={"x-api-key": key}
        ),
        404,
        "no service named 'nope'",
    )
    assert_error(
        await stack.public.get(f"{API}/estimated-wait-time/virtual-queues/sales"),
        401,
        "missing x-api-key",
    )

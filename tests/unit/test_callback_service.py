"""The booking and availability rules of ``CallbackService``, fast: SQLite in a temporary file,
in-memory throttle counters and routing transport, no servers, no HTTP."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from testbed.metrics_parse import parse, value

from dialback.callbacks import views
from dialback.callbacks.booking import SqlAlchemyStore
from dialback.callbacks.schemas import CreateCallback
from dialback.callbacks.service import CallbackService
from dialback.db.engine import create_engine
from dialback.db.migrations import migrate
from dialback.db.schema import callbacks, capacity_usage
from dialback.kit.errors import ApiError, BadRequest, Conflict, NotFound, TooManyRequests
from dialback.observability.events import Events
from dialback.routing.transport import MemoryTransport
from dialback.services import repository as services_repo
from dialback.services.repository import ServiceCache
from dialback.services.schemas import ServiceConfig
from dialback.tenants import repository as tenants_repo
from dialback.tenants.repository import Tenant
from dialback.throttle.counters import MemoryCounters
from tests.support.public_api import ALL_DAYS, NY, config, local, z
from tests.support.stack import make_settings

WEEKDAYS_9_TO_5 = {d: [{"start": "09:00", "end": "17:00"}] for d in ALL_DAYS[:5]}


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated SQLite database every test copies."""
    import asyncio

    path = tmp_path_factory.mktemp("sqlite") / "template.db"

    async def prepare() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await migrate(engine)
        await engine.dispose()

    asyncio.run(prepare())
    yield path


@dataclass
class Desk:
    """A CallbackService on SQLite with its in-memory collaborators."""

    service: CallbackService
    engine: AsyncEngine
    counters: MemoryCounters
    transport: MemoryTransport
    events: Events
    woken: list[float] = field(default_factory=list)

    async def tenant(
        self,
        name: str = "acme",
        *,
        service: str = "sales",
        cfg: ServiceConfig | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Tenant:
        """A tenant with one service (always open unless ``cfg`` says otherwise)."""
        async with self.engine.begin() as conn:
            t = await tenants_repo.get_tenant_by_name(conn, name)
            if t is None:
                t = await tenants_repo.create_tenant(conn, name, settings or {})
            await services_repo.create_service(conn, t.id, service, cfg or config())
        return t

    async def create(self, tenant: Tenant, number: str = "+14155550100", **body: Any) -> str:
        """Book; ``desiredTime`` may be epoch seconds."""
        body.setdefault("serviceName", "sales")
        if isinstance(body.get("desiredTime"), float | int):
            body["desiredTime"] = z(body["desiredTime"])
        req = CreateCallback.model_validate({"phoneNumber": number, **body})
        return await self.service.create(tenant, req)

    def alarm(self, name: str, **labels: str) -> float | None:
        return value(parse(self.events.metrics.registry.render()), name, **labels)


@pytest.fixture
async def desk(template_db: Path, tmp_path: Path) -> AsyncIterator[Desk]:
    db = tmp_path / "dialback.db"
    shutil.copy(template_db, db)
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    counters, transport, events = MemoryCounters(), MemoryTransport(), Events()
    woken: list[float] = []
    service = CallbackService(
        engine,
        SqlAlchemyStore(engine),
        counters,
        ServiceCache(engine),
        transport,
        events,
        make_settings(database_url=f"sqlite+aiosqlite:///{db}"),
        wake_monitor=lambda: woken.append(time.time()),
    )
    try:
        yield Desk(service, engine, counters, transport, events, woken)
    finally:
        await engine.dispose()


def refused(exc: pytest.ExceptionInfo[ApiError], starts: str) -> str:
    assert exc.value.message.startswith(starts), exc.value.message
    return exc.value.message


def utc_today() -> date:
    return datetime.now(UTC).date()


def next_monday(tz: str = NY) -> date:
    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=2)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return day


def phone(i: int) -> str:
    return f"+1415555{i:04d}"


def office() -> ServiceConfig:
    """New York office hours, 30-minute slots of 2, 4 on Monday 09:00-10:00."""
    monday = {"mon": [{"start": "09:00", "end": "10:00", "capacity": 4}]}
    return config(
        businessHours={"timezone": NY, "weekly": WEEKDAYS_9_TO_5},
        capacity={"slotMinutes": 30, "defaultCapacity": 2, "weekly": monday},
    )


# --- create: time, hours, offers, numbers -------------------------------------------------------


async def test_immediate_create_wakes_the_monitor_and_is_retrievable(desk: Desk) -> None:
    t = await desk.tenant()
    cid = await desk.create(t, number="(415) 555-0123", userData={"orderId": "A1"})
    assert len(desk.woken) == 1
    view = views.callback(await desk.service.retrieve(t, cid))
    assert view["callbackState"] == "SCHEDULED" and view["cbOfferType"] == "ASAP"
    # GES: "by default, the desired time is the current time": when it was booked and due.
    assert view["desiredTime"] is not None
    assert view["desiredTime"] == view["createdTime"] == view["dueTime"]
    assert view["phoneNumber"] == "+14155550123"
    assert "positionInQueue" not in view and "callbackReason" not in view
    assert desk.alarm("ges_callbacks_created", tenant="acme", service="sales") == 1


async def test_desired_time_in_the_past_and_beyond_the_horizon(desk: Desk) -> None:
    t = await desk.tenant()
    with pytest.raises(BadRequest) as exc:
        await desk.create(t, desiredTime=time.time() - 3600)
    refused(exc, "desiredTime: is in the past")
    await desk.create(t, desiredTime=time.time() - 5)  # a few seconds late is "now"
    horizon = desk.service.settings.booking_horizon_days
    with pytest.raises(BadRequest) as exc:
        await desk.create(t, number=phone(1), desiredTime=time.time() + (horizon + 1) * 86400)
    refused(exc, f"desiredTime: is more than {horizon} days ahead")
    await desk.create(t, number=phone(1), desiredTime=time.time() + (horizon - 1) * 86400)
    assert len(desk.woken) == 1


async def test_desired_time_outside_business_hours_names_the_next_opening(desk: Desk) -> None:
    t = await desk.tenant(cfg=config(businessHours={"timezone": "UTC", "weekly": WEEKDAYS_9_TO_5}))
    day = utc_today() + timedelta(days=2)
    while day.weekday() != 5:
        day += timedelta(days=1)
    monday = day + timedelta(days=2)
    with pytest.raises(BadRequest) as exc:
        await desk.create(t, desiredTime=local(day, "12:00", "UTC"))
    message = refused(exc, "desiredTime: is outside the business hours of 'sales'")
    assert message.endswith(f"the next opening is {z(local(monday, '09:00', 'UTC'))}")
    await desk.create(t, desiredTime=local(monday, "16:59", "UTC"))
    with pytest.raises(BadRequest):
        await desk.create(t, number=phone(1), desiredTime=local(monday, "17:00", "UTC"))


async def test_immediate_create_while_closed_names_the_reopening(desk: Desk) -> None:
    today = utc_today()
    closed = config(
        businessHours={
            "timezone": "UTC",
            "weekly": {d: [{"start": "00:00", "end": "24:00"}] for d in ALL_DAYS},
            "closedDates": [str(today), str(today + timedelta(days=1))],
        }
    )
    t = await desk.tenant(service="closed", cfg=closed)
    with pytest.raises(BadRequest) as exc:
        await desk.create(t, serviceName="closed")
    reopens = local(today + timedelta(days=2), "00:00", "UTC")
    assert f"it opens at {z(reopens)}" in refused(exc, "serviceName: service 'closed' is closed")
    await desk.create(t, serviceName="closed", desiredTime=reopens + 600)
    assert desk.woken == []


async def test_offers_unknown_services_and_numbers(desk: Desk) -> None:
    t = await desk.tenant(service="later", cfg=config(immediateCallbackEnabled=False))
    await desk.tenant(service="now", cfg=config(scheduledCallbackEnabled=False))
    with pytest.raises(BadRequest) as exc:
        await desk.create(t, serviceName="later")
    refused(exc, "serviceName: service 'later' does not offer immediate callbacks")
    with pytest.raises(BadRequest) as exc:
        await desk.create(t, serviceName="now", desiredTime=time.time() + 3600)
    refused(exc, "desiredTime: service 'now' does not offer scheduled callbacks")
    with pytest.raises(BadRequest) as exc:
        await desk.create(t, serviceName="nope")
    refused(exc, "serviceName: no service named 'nope'")
    with pytest.raises(BadRequest) as exc:
        await desk.create(t, serviceName="now", number="12")
    refused(exc, "phoneNumber: impossible phone number")
    # Refused before counting: the throttle counters are untouched.
    assert desk.counters._values == {}


# --- capacity ------------------------------------------------------------------------------------


async def test_a_full_slot_answers_429_with_proposals_as_a_map_of_strings(desk: Desk) -> None:
    cfg = config(
        businessHours={"alwaysOpen": True, "timezone": NY},
        capacity={"slotMinutes": 30, "defaultCapacity": 2},
    )
    t = await desk.tenant(cfg=cfg)
    day = datetime.now(ZoneInfo(NY)).date() + timedelta(days=3)
    nxt = day + timedelta(days=1)
    for i, hhmm in enumerate(("23:05", "23:20")):
        await desk.create(t, number=phone(i), desiredTime=local(day, hhmm, NY))
    with pytest.raises(TooManyRequests) as exc:
        await desk.create(t, number=phone(9), desiredTime=local(day, "23:10", NY))
    refused(exc, f"desiredTime: the slot starting {z(local(day, '23:00', NY))} is full")
    # GES's SDKs type data.slots as HashData (map<string, string>): each proposed slot's
    # utcTime -> its remaining capacity as a decimal string, in time order.
    await desk.create(t, number=phone(5), desiredTime=local(nxt, "00:40", NY))
    with pytest.raises(TooManyRequests) as exc:
        await desk.create(t, number=phone(9), desiredTime=local(day, "23:10", NY))
    assert exc.value.data == {
        "slots": {
            z(local(day, "23:30", NY)): "2",
            z(local(nxt, "00:00", NY)): "2",
            z(local(nxt, "00:30", NY)): "1",
            z(local(nxt, "01:00", NY)): "2",
            z(local(nxt, "01:30", NY)): "2",
        }
    }
    assert list(exc.value.data["slots"]) == sorted(exc.value.data["slots"])
    # The refused bookings gave their throttle units back: the tenant's window counts 3, the
    # refused number 0, the three booked numbers 1 each.
    assert sorted(v for v, _ in desk.counters._values.values()) == [0, 1, 1, 1, 3]


async def test_zero_capacity_unlimited_slots_and_always_check_capacity(desk: Desk) -> None:
    weekly = {d: [{"start": "12:00", "end": "13:00", "capacity": 0}] for d in ALL_DAYS}
    t = await desk.tenant(cfg=config(capacity={"slotMinutes": 60, "weekly": weekly}))
    day = utc_today() + timedelta(days=2)
    with pytest.raises(TooManyRequests) as exc:
        await desk.create(t, number=phone(1), desiredTime=local(day, "12:30", "UTC"))
    # The next slot has no limit: "-1".
    assert next(iter(exc.value.data["slots"].items())) == (z(local(day, "13:00", "UTC")), "-1")
    for i in range(5):  # no defaultCapacity: unlimited
        await desk.create(t, number=phone(10 + i), desiredTime=local(day, "14:00", "UTC"))
    zero = await desk.tenant("zero", cfg=config(capacity={"defaultCapacity": 0}))
    soon = time.time() + 10
    with pytest.raises(TooManyRequests):
        await desk.create(zero, number=phone(1), desiredTime=soon, alwaysCheckCapacity=True)
    await desk.create(zero, number=phone(1), desiredTime=soon)  # immediate: no slot


async def test_cancel_frees_the_place_and_announces_dispatched_attempts(desk: Desk) -> None:
    t = await desk.tenant(cfg=config(capacity={"slotMinutes": 30, "defaultCapacity": 1}))
    desired = local(utc_today() + timedelta(days=2), "10:00", "UTC")
    first = await desk.create(t, number=phone(1), desiredTime=desired)
    with pytest.raises(TooManyRequests):
        await desk.create(t, number=phone(2), desiredTime=desired)
    assert await desk.service.cancel(t, first) == first
    with pytest.raises(BadRequest) as bad:  # GES documents 400 and 404 for cancel, never 409
        await desk.service.cancel(t, first)
    refused(bad, "callback is COMPLETED (cancelled) and can no longer be cancelled")
    second = await desk.create(t, number=phone(2), desiredTime=desired)
    assert await desk.transport.read_dispatches("re", 10, 1) == []  # SCHEDULED: nothing to say
    async with desk.engine.begin() as conn:
        await conn.execute(
            callbacks.update().where(callbacks.c.id == second).values(state="QUEUED", queued_at=1)
        )
    await desk.service.cancel(t, second)
    [(_eid, cancel)] = await desk.transport.read_dispatches("re", 10, 1)
    assert cancel == {"type": "cancel", "id": second, "attempt": "1"}
    with pytest.raises(NotFound):
        await desk.service.cancel(await desk.tenant("other"), first)


async def test_cancel_of_a_processing_callback_is_400_public_and_409_admin(desk: Desk) -> None:
    t = await desk.tenant()
    cid = await desk.create(t, desiredTime=time.time() + 3600)
    async with desk.engine.begin() as conn:
        await conn.execute(
            callbacks.update().where(callbacks.c.id == cid).values(state="PROCESSING")
        )
    with pytest.raises(BadRequest) as bad:
        await desk.service.cancel(t, cid)
    assert bad.value.status == 400
    refused(bad, "callback is PROCESSING and can no longer be cancelled")
    with pytest.raises(Conflict) as conflict:  # the admin API's own rule for state conflicts
        await desk.service.admin_cancel(cid)
    refused(conflict, "callback is PROCESSING and can no longer be cancelled")


# --- throttles -----------------------------------------------------------------------------------


async def test_tenant_throttle(desk: Desk) -> None:
    t = await desk.tenant(settings={"throttle": {"maxCallbacks": 3, "windowSeconds": 3600}})
    later = time.time() + 3600
    for i in range(3):
        await desk.create(t, number=phone(i), desiredTime=later)
    with pytest.raises(TooManyRequests) as exc:
        await desk.create(t, number=phone(7), desiredTime=later)
    refused(exc, "tenant 'acme' has reached its limit of 3 callbacks per window")
    assert desk.alarm("CB_TTL_LIMIT_REACHED", tenant="acme") == 1
    other = await desk.tenant("globex")
    await desk.create(other, number=phone(7), desiredTime=later)


async def test_open_and_daily_limits_per_number(desk: Desk) -> None:
    cfg = config(throttle={"maxOpenPerNumber": 2, "maxPerNumberPerDay": 3})
    t = await desk.tenant(cfg=cfg)
    later = time.time() + 3600
    ids = [
        await desk.create(t, number=n, desiredTime=later)
        for n in ("+14155550123", "(415) 555-0123")
    ]
    with pytest.raises(TooManyRequests) as exc:
        await desk.create(t, number="415-555-0123", desiredTime=later)
    refused(exc, "phoneNumber: already has 2 open callbacks (limit 2)")
    assert desk.alarm("CB_ENQUEUE_LIMIT_REACHED", tenant="acme") == 1
    await desk.service.cancel(t, ids[0])
    await desk.create(t, number="+14155550123", desiredTime=later)  # the 3rd today
    await desk.service.cancel(t, ids[1])
    with pytest.raises(TooManyRequests) as exc:
        await desk.create(t, number="+14155550123", desiredTime=later)
    refused(exc, "phoneNumber: reached the limit of 3 callbacks per day")


# --- availability, open-for, queue status -------------------------------------------------------


async def test_availability_lists_slots_within_business_hours(desk: Desk) -> None:
    t = await desk.tenant(cfg=office())
    monday = next_monday()
    found = await desk.service.availability(
        t,
        "sales",
        start=local(monday, "00:00"),
        end=None,
        number_of_days=1,
        timezone="UTC",
        max_slots=None,
        report_busy=False,
    )
    data = views.availability(found)
    assert data["durationMin"] == 30 and data["timezone"] == "UTC"
    starts = [local(monday, "09:00") + i * 1800 for i in range(16)]
    assert [s["utcTime"] for s in data["slots"]] == [z(t) for t in starts]
    assert [(s["capacity"], s["total"]) for s in data["slots"]] == [(4, 4)] * 2 + [(2, 2)] * 14


async def test_availability_reports_busy_slots_and_limits(desk: Desk) -> None:
    t = await desk.tenant(cfg=office())
    monday = next_monday()
    ten = local(monday, "10:00")
    for i in range(2):
        await desk.create(t, number=phone(i), desiredTime=ten + 60)

    async def slots(**kw: Any) -> list[tuple[float, int | None]]:
        args: dict[str, Any] = {
            "start": ten,
            "end": ten + 3600,
            "number_of_days": None,
            "timezone": NY,
            "max_slots": None,
            "report_busy": False,
        }
        found = await desk.service.availability(t, "sales", **{**args, **kw})
        return [(s.start, s.free) for s in found.slots]

    assert await slots() == [(ten + 1800, 2)]
    assert await slots(report_busy=True) == [(ten, 0), (ten + 1800, 2)]
    assert await slots(report_busy=True, max_slots=1) == [(ten, 0)]
    with pytest.raises(BadRequest, match="end: must be after start"):
        await slots(end=ten)
    with pytest.raises(BadRequest, match="at most 31 days"):
        await slots(end=ten + 32 * 86400)
    with pytest.raises(NotFound, match="no service named 'nope'"):
        await desk.service.availability(
            t,
            "nope",
            **{
                "start": None,
                "end": None,
                "number_of_days": 1,
                "timezone": "UTC",
                "max_slots": None,
                "report_busy": False,
            },
        )


async def test_open_for_and_queue_status(desk: Desk) -> None:
    t = await desk.tenant(cfg=office())
    await desk.tenant(service="never", cfg=config(businessHours={"weekly": {}}))
    monday = next_monday()
    assert await desk.service.open_for(t, "sales", local(monday, "10:00")) == 7 * 3600
    assert await desk.service.open_for(t, "sales", local(monday, "17:00")) == 0
    assert await desk.service.open_for(t, "never", None) == 0
    # No routing engine reads the stream: no immediate offer, no estimate; a service that is
    # never open has no slot to offer either.
    status = await desk.service.queue_status(t, "never")
    assert views.queue_status(status) == {
        "ewt": -1,
        "offerImmediateCallback": False,
        "offerScheduledCallback": False,
    }
    assert (await desk.service.queue_status(t, "sales")).offer_scheduled is True
    assert views.wait_times(
        await desk.service.estimated_wait_times(t, ["sales", "x"], "mode1")
    ) == [
        {
            "virtualQueue": "sales",
            "estimatedWaitTime": -1,
            "message": "no estimate yet",
            "resultCode": -1,
        },
        {
            "virtualQueue": "x",
            "estimatedWaitTime": -1,
            "message": "unknown virtual queue",
            "resultCode": -1,
        },
    ]


# --- reschedule ----------------------------------------------------------------------------------


async def test_reschedule_moves_the_place_and_records_the_history(desk: Desk) -> None:
    t = await desk.tenant(cfg=config(capacity={"slotMinutes": 60, "defaultCapacity": 1}))
    day = utc_today() + timedelta(days=2)
    ten, eleven = local(day, "10:00", "UTC"), local(day, "11:00", "UTC")
    cid = await desk.create(t, number=phone(1), desiredTime=ten + 60)
    other = await desk.create(t, number=phone(2), desiredTime=eleven + 60)
    with pytest.raises(TooManyRequests) as exc:
        await desk.service.reschedule(cid, eleven + 120)
    assert exc.value.data["slots"] == {
        z(local(day, f"{h}:00", "UTC")): "1" for h in (12, 13, 14, 15, 16)
    }
    detail = views.admin_detail(await desk.service.reschedule(cid, ten + 600))  # same slot
    assert detail["dueTime"] == z(ten + 600)
    await desk.service.cancel(t, other)
    detail = views.admin_detail(await desk.service.reschedule(cid, eleven + 120))
    assert detail["dueTime"] == z(eleven + 120) and detail["tenant"] == "acme"
    assert [
        (h["fromState"], h["toState"], h["reason"], h["source"]) for h in detail["history"]
    ] == [
        (None, "SCHEDULED", None, "api"),
        ("SCHEDULED", "SCHEDULED", "rescheduled", "admin"),
        ("SCHEDULED", "SCHEDULED", "rescheduled", "admin"),
    ]
    async with desk.engine.connect() as conn:
        usage = dict(
            (
                await conn.execute(sa.select(capacity_usage.c.slot_start, capacity_usage.c.booked))
            ).all()
        )
    assert usage == {ten: 0, eleven: 1}


async def test_reschedule_refusals(desk: Desk) -> None:
    t = await desk.tenant(cfg=config(businessHours={"timezone": "UTC", "weekly": WEEKDAYS_9_TO_5}))
    monday = next_monday("UTC")
    cid = await desk.create(t, desiredTime=local(monday, "10:00", "UTC"))
    with pytest.raises(BadRequest, match="desiredTime: must be in the future"):
        await desk.service.reschedule(cid, time.time() - 1)
    with pytest.raises(BadRequest, match="desiredTime: is outside the business hours"):
        await desk.service.reschedule(cid, local(monday, "18:00", "UTC"))
    with pytest.raises(NotFound):
        await desk.service.reschedule("no such id!", local(monday, "11:00", "UTC"))
    async with desk.engine.begin() as conn:
        await conn.execute(
            callbacks.update()
            .where(callbacks.c.id == cid)
            .values(lease_expires_at=time.time() + 30)
        )
    with pytest.raises(Conflict, match="being dispatched right now"):
        await desk.service.reschedule(cid, local(monday, "11:00", "UTC"))
    await desk.service.cancel(t, cid)
    with pytest.raises(Conflict, match=r"callback is COMPLETED \(cancelled\); only SCHEDULED"):
        await desk.service.reschedule(cid, local(monday, "11:00", "UTC"))


# --- GES client compatibility (issue #10) -------------------------------------------------------


async def test_every_slot_availability_offers_books_at_that_moment(desk: Desk) -> None:
    # Finding 6: the slot under way was listed first and booking its utcTime answered 400
    # "is in the past". Started slots are no longer offered; every offered one books.
    cfg = config(
        capacity={"slotMinutes": 60, "defaultCapacity": 1}, throttle={"maxPerNumberPerDay": 50}
    )
    t = await desk.tenant(cfg=cfg)
    now = time.time()
    found = await desk.service.availability(
        t,
        "sales",
        start=None,
        end=None,
        number_of_days=1,
        timezone="UTC",
        max_slots=None,
        report_busy=False,
    )
    offered = views.availability(found)["slots"]
    assert len(offered) in (23, 24)
    for i, slot in enumerate(offered):
        await desk.create(t, number=phone(i), desiredTime=slot["utcTime"])
    # Each was booked as a scheduled callback into its slot, not as an immediate one.
    assert found.slots[0].start >= now + desk.service.settings.immediate_window_seconds
    assert desk.woken == []
    # Booked full: nothing is offered any more, and reportBusy lists them with capacity 0.
    again, busy = [
        await desk.service.availability(
            t,
            "sales",
            start=None,
            end=None,
            number_of_days=1,
            timezone="UTC",
            max_slots=None,
            report_busy=report_busy,
        )
        for report_busy in (False, True)
    ]
    assert again.slots == []
    assert [s.start for s in busy.slots] == [s.start for s in found.slots]
    assert {s.free for s in busy.slots} == {0}


async def _completed(desk: Desk, tenant: Tenant, n: int, *, reason: str = "answered") -> None:
    """``n`` routed callbacks of ``sales`` completed over the last ``n`` minutes."""
    async with desk.engine.begin() as conn:
        svc_id = (await desk.service.require_service(tenant, "sales")).id
        now = time.time()
        for i in range(n):
            done = now - 60 * i
            await conn.execute(
                callbacks.insert().values(
                    id=f"00000000-0000-4000-8000-{i:012d}",
                    tenant_id=tenant.id,
                    service_id=svc_id,
                    service_name="sales",
                    phone_number=phone(i),
                    state="COMPLETED",
                    reason=reason,
                    offer_type="ASAP",
                    due_at=done - 120,
                    language="en-US",
                    user_data={},
                    params={},
                    created_at=done - 120,
                    updated_at=done,
                    queued_at=done - 100,
                    routed_at=done - 40,
                    completed_at=done,
                )
            )


async def test_every_wait_estimate_has_a_result_code(desk: Desk) -> None:
    # Finding 4: the Java SDK's EstimatedWaitTime requires resultCode (0 valid, -1 no
    # interactions yet, -2 no agents logged in).
    t = await desk.tenant()

    async def item(mode: str, name: str = "sales") -> dict[str, Any]:
        (found,) = views.wait_times(await desk.service.estimated_wait_times(t, [name], mode))
        return found

    # No routing-engine consumer alive: mode2 says nobody is logged in.
    assert await item("mode2") == {
        "virtualQueue": "sales",
        "estimatedWaitTime": -1,
        "message": "no agents logged in",
        "resultCode": -2,
    }
    assert (await item("mode1"))["resultCode"] == -1  # mode1 ignores agents: no history yet
    await desk.transport.heartbeat("engine-1")
    assert (await item("mode2"))["resultCode"] == -1
    assert (await item("ghost"))["resultCode"] == -1
    await _completed(desk, t, 5)
    for mode in ("mode1", "mode2", "mode3"):
        found = await item(mode)
        assert found["resultCode"] == 0 and found["message"] == "ok", found
        assert found["estimatedWaitTime"] >= 0


@pytest.mark.parametrize(
    ("value", "zone", "want"),
    [
        ("2026-01-12T16:00:00", "America/New_York", "2026-01-12T21:00:00.000Z"),
        ("2026-07-13T16:00:00", "America/New_York", "2026-07-13T20:00:00.000Z"),
        ("2026-01-12T16:00:00", "UTC", "2026-01-12T16:00:00.000Z"),
        ("2026-01-12T16:00:00Z", "America/New_York", "2026-01-12T16:00:00.000Z"),
        ("2026-01-12T16:00:00+01:00", "America/New_York", "2026-01-12T15:00:00.000Z"),
        # The repeated hour of a backward change is its first occurrence (EDT).
        ("2026-11-01T01:30:00", "America/New_York", "2026-11-01T05:30:00.000Z"),
    ],
)
def test_a_time_without_offset_is_in_the_requested_time_zone(
    value: str, zone: str, want: str
) -> None:
    # Finding 5: an offset-less start with timezone was read as UTC.
    from dialback.callbacks.schemas import parse_time_param

    assert z(parse_time_param("start", value, None, zone) or 0) == want
    assert parse_time_param("start", None, "1768233600000", zone) == 1768233600.0  # ms: UTC

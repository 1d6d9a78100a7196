"""Booking rules of the public API: validation, business hours, capacity, throttles, EWT."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.callbacks import repository as repo
from dialback.callbacks.booking import NewCallback
from dialback.callbacks.schemas import CANCELLABLE_STATES, CreateCallback
from dialback.kit.context import bind
from dialback.kit.errors import BadRequest, Conflict, NotFound, TooManyRequests
from dialback.kit.phone import mask, normalise_number
from dialback.kit.timefmt import local_iso, utc_iso
from dialback.observability.logging import TRACE
from dialback.services.calendar import Slot
from dialback.services.repository import ServiceRecord
from dialback.tenants.repository import Tenant

if TYPE_CHECKING:
    from dialback.container import Container

log = logging.getLogger("dialback.callbacks")
PROPOSED_SLOTS = 5


def iso(t: float | None) -> str | None:
    """Epoch seconds to GES ISO-8601 UTC, None stays None."""
    return None if t is None else utc_iso(t)


async def require_service(
    rt: Container, tenant: Tenant, name: str, *, field: str | None = None
) -> ServiceRecord:
    """The tenant's service; 400 naming the body field, or 404 for a path parameter."""
    svc = await rt.service_cache.get(tenant.id, name)
    if svc is None:
        if field:
            raise BadRequest(f"{field}: no service named {name!r}")
        raise NotFound(f"no service named {name!r}")
    return svc


_day_label: tuple[int, str] = (-1, "")


def _utc_day(now: float) -> str:
    """YYYYMMDD of ``now`` in UTC (formatted once a day)."""
    global _day_label
    day = int(now // 86400)
    if _day_label[0] != day:
        _day_label = (day, datetime.fromtimestamp(day * 86400, UTC).strftime("%Y%m%d"))
    return _day_label[1]


def _throttle_keys(tenant: Tenant, phone: str, now: float) -> list[tuple[str, int]]:
    throttle = tenant.settings.get("throttle", {})
    window = int(throttle.get("windowSeconds", 60))
    digest = hashlib.sha1(f"{tenant.id}:{phone}".encode()).hexdigest()[:20]
    return [
        (f"ten:{tenant.id}:{int(now // window)}", window),
        (f"num:{digest}:{_utc_day(now)}", 2 * 86400),
    ]


async def _release(rt: Container, keys: list[tuple[str, int]]) -> None:
    for key, _ttl in keys:
        await rt.counters.decr(key)


async def create_callback(rt: Container, tenant: Tenant, req: CreateCallback) -> str:
    """Book a callback; returns its id once the row is committed."""
    trace = log.isEnabledFor(TRACE)
    if trace:
        log.log(
            TRACE,
            "create callback: request accepted for validation",
            extra={
                "service": req.serviceName,
                "desiredTime": req.desiredTime.isoformat() if req.desiredTime else None,
                "cbOfferType": req.cbOfferType,
                "userDataKeys": len(req.userData),
            },
        )
    svc = await require_service(rt, tenant, req.serviceName, field="serviceName")
    cfg = svc.config
    if trace:
        log.log(TRACE, "create callback: service resolved", extra={"serviceId": svc.id})
    phone = normalise_number(req.phoneNumber, cfg.validation)
    if trace:
        log.log(TRACE, "create callback: phone number valid", extra={"number": mask(phone)})
    now = time.time()
    desired = req.desiredTime.timestamp() if req.desiredTime else None
    immediate = desired is None or (
        desired <= now + rt.settings.immediate_window_seconds and not req.alwaysCheckCapacity
    )
    slot: Slot | None = None
    if desired is not None and desired < now - rt.settings.immediate_window_seconds:
        raise BadRequest("desiredTime: is in the past")
    if immediate:
        if not cfg.immediate_enabled:
            raise BadRequest(
                f"serviceName: service {svc.name!r} does not offer immediate callbacks"
            )
        if not svc.calendar.is_open(now):
            nxt = svc.calendar.next_opening(now)
            hint = f"; it opens at {iso(nxt)}" if nxt else ""
            raise BadRequest(
                f"serviceName: service {svc.name!r} is closed now{hint}; book a desiredTime"
            )
        due = now
    else:
        assert desired is not None
        if not cfg.scheduled_enabled:
            raise BadRequest(
                f"desiredTime: service {svc.name!r} does not offer scheduled callbacks"
            )
        if desired > now + rt.settings.booking_horizon_days * 86400:
            raise BadRequest(
                f"desiredTime: is more than {rt.settings.booking_horizon_days} days ahead"
            )
        slot = svc.calendar.slot_for(max(desired, now))
        if slot is None:
            nxt = svc.calendar.next_opening(desired)
            hint = f"; the next opening is {iso(nxt)}" if nxt else ""
            raise BadRequest(f"desiredTime: is outside the business hours of {svc.name!r}{hint}")
        due = desired
    if trace:
        log.log(
            TRACE,
            "create callback: schedule decided",
            extra={
                "immediate": immediate,
                "dueTime": iso(due),
                "slot": iso(slot.start) if slot else None,
            },
        )

    keys = _throttle_keys(tenant, phone, now)
    tenant_count, day_count = await rt.counters.incr_many(keys)
    if trace:
        log.log(
            TRACE,
            "create callback: throttle counters read",
            extra={"tenantCount": tenant_count, "numberTodayCount": day_count},
        )
    limit = int(tenant.settings.get("throttle", {}).get("maxCallbacks", 500))
    if tenant_count > limit:
        await _release(rt, keys)
        rt.events.tenant_throttled(tenant)
        raise TooManyRequests(
            f"tenant {tenant.name!r} has reached its limit of {limit} callbacks per window"
        )
    if day_count > cfg.throttle.max_per_number_per_day:
        await _release(rt, keys)
        rt.events.number_throttled(tenant)
        raise TooManyRequests(
            f"phoneNumber: reached the limit of {cfg.throttle.max_per_number_per_day} callbacks per day"
        )

    cid = str(uuid.uuid4())
    max_open = cfg.throttle.max_open_per_number
    limit_slot = slot if slot is not None and slot.total is not None else None
    try:
        booking = await rt.store.book(
            NewCallback(
                id=cid,
                tenant_id=tenant.id,
                service_id=svc.id,
                service_name=svc.name,
                phone_number=phone,
                offer_type=req.cbOfferType or ("ASAP" if immediate else "SCHEDULED"),
                desired_time=desired,
                due_at=due,
                priority=req.priority,
                language=req.language,
                max_attempts=cfg.retry.max_attempts,
                created_at=now,
                user_data=req.userData,
                params=req.extra_params(),
            ),
            max_open=max_open,
            slot_start=limit_slot.start if limit_slot else None,
            slot_total=limit_slot.total if limit_slot else None,
        )
        if trace:
            log.log(
                TRACE,
                "create callback: open callbacks for the number counted",
                extra={"open": booking.open_count, "limit": max_open},
            )
        if booking.outcome == "open_limit":
            rt.events.number_throttled(tenant)
            raise TooManyRequests(
                f"phoneNumber: already has {booking.open_count} open callbacks (limit {max_open})"
            )
        if booking.outcome == "full":
            assert limit_slot is not None
            async with rt.engine.connect() as conn:
                proposals = await propose_slots(conn, svc, limit_slot.end, now)
            raise TooManyRequests(
                f"desiredTime: the slot starting {iso(limit_slot.start)} is full",
                data={"slots": proposals},
            )
        if trace:
            log.log(
                TRACE,
                "create callback: capacity checked",
                extra={
                    "slot": iso(slot.start) if slot else None,
                    "total": slot.total if slot else None,
                    "reserved": limit_slot is not None,
                },
            )
    except BaseException:
        await _release(rt, keys)
        raise
    bind(callbackId=cid)
    if trace:
        log.log(TRACE, "create callback: stored (committed)", extra={"state": "SCHEDULED"})
    rt.events.callback_created(tenant, svc.name, immediate)
    if immediate:
        rt.wake_monitor()
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "callback booked",
            extra={"service": svc.name, "immediate": immediate, "dueTime": iso(due)},
        )
    return cid


async def propose_slots(
    conn: AsyncConnection, svc: ServiceRecord, after: float, now: float
) -> dict[str, list[str]]:
    """Up to PROPOSED_SLOTS free slots from ``after``, keyed by local date."""
    cfg = svc.config
    start = max(after, now)
    end = start + 14 * 86400
    usage = await repo.slot_usage(conn, svc.id, start - 3600, end)
    out: dict[str, list[str]] = {}
    found = 0
    tz = cfg.business_hours.timezone
    for s in svc.calendar.iter_slots(start, end):
        if s.start < start:
            continue
        if s.total is None or usage.get(s.start, 0) < s.total:
            out.setdefault(local_iso(s.start, tz)[:10], []).append(utc_iso(s.start))
            found += 1
            if found >= PROPOSED_SLOTS:
                break
    return out


async def cancel_callback(
    rt: Container, tenant: Tenant, callback_id: str, *, source: str = "api"
) -> str:
    """Cancel a callback that is not yet being handled by an agent (``source`` goes to history)."""
    now = time.time()
    async with rt.engine.begin() as conn:
        row = await repo.lock_callback(conn, tenant.id, callback_id)
        if row is None:
            raise NotFound(f"no callback with id {callback_id!r}")
        if row.state not in CANCELLABLE_STATES:
            detail = f"COMPLETED ({row.reason})" if row.state == "COMPLETED" else row.state
            raise Conflict(f"callback is {detail} and can no longer be cancelled")
        await repo.complete_cancelled(conn, row, now, source)
    if row.state in ("QUEUED", "ROUTING"):
        try:
            await rt.transport.publish_cancel(row.id, row.attempt)
        except Exception:
            # The cancel is committed; a late outcome for the attempt is ignored.
            rt.events.cancel_notify_failed()
    return callback_id


async def retrieve_callback(rt: Container, tenant: Tenant, callback_id: str) -> dict[str, Any]:
    """The GES ``Callback`` view of one callback."""
    async with rt.engine.connect() as conn:
        row = await repo.get_callback(conn, tenant.id, callback_id)
        if row is None:
            raise NotFound(f"no callback with id {callback_id!r}")
        data: dict[str, Any] = {
            "id": row.id,
            "serviceName": row.service_name,
            "phoneNumber": row.phone_number,
            "desiredTime": iso(row.desired_time),
            "callbackState": row.state,
            "cbOfferType": row.offer_type,
            "priority": row.priority,
            "language": row.language,
            "attempt": row.attempt,
            "createdTime": iso(row.created_at),
            "dueTime": iso(row.due_at),
        }
        if row.state == "COMPLETED":
            data["callbackReason"] = row.reason
        if row.state in ("QUEUED", "ROUTING", "PROCESSING"):
            pos = await repo.position_in_queue(conn, row) if row.state == "QUEUED" else 0
            data["positionInQueue"] = pos
            svc = await rt.service_cache.get(tenant.id, row.service_name)
            data["estimatedWaitTime"] = (
                await estimate_wait(rt, conn, svc, "mode1", position=pos) if svc and pos else 0
            )
    return data


async def estimate_wait(
    rt: Container, conn: AsyncConnection, svc: ServiceRecord, mode: str, position: int | None = None
) -> int:
    """Estimated wait in seconds for a new (or the given-position) callback; -1 when unknown.

    mode1: backlog / throughput of the last 32 routed completions.
    mode2: as mode1, but -1 while no routing-engine consumer is active.
    mode3: mean queued->routed wait of the last 32 routed callbacks.
    """
    comps = await repo.recent_completions(conn, svc.id, 32)
    if mode == "mode3":
        waits = [r.routed_at - r.queued_at for r in comps if r.queued_at and r.routed_at]
        return round(sum(waits) / len(waits)) if waits else -1
    if mode == "mode2" and await rt.transport.active_consumers() == 0:
        return -1
    if len(comps) < 2:
        return -1
    span = comps[0].completed_at - comps[-1].completed_at
    if span <= 0:
        return 0
    rate = (len(comps) - 1) / span
    ahead = position if position is not None else await repo.queued_count(conn, svc.id) + 1
    return round(ahead / rate)


def parse_time_param(name: str, iso_value: str | None, ms_value: str | None) -> float | None:
    """Read an ISO-8601 or epoch-milliseconds query parameter; 400 naming it when malformed."""
    if iso_value:
        try:
            dt = datetime.fromisoformat(iso_value.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"{name}: not an ISO-8601 time (yyyy-MM-ddTHH:mm:ss.SSSZ)") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        # Same bounds as the MS form: times near year 1 or 9999 overflow the slot arithmetic.
        if not 0 <= dt.timestamp() <= 32503680000:
            raise BadRequest(f"{name}: out of range (1970 to 3000)")
        return dt.timestamp()
    if ms_value:
        try:
            value = int(ms_value)
        except ValueError:
            raise BadRequest(f"{name}MS: not an integer number of milliseconds") from None
        if not 0 <= value <= 32503680000000:
            raise BadRequest(f"{name}MS: out of range")
        return value / 1000.0
    return None


async def availability(
    rt: Container,
    tenant: Tenant,
    service_name: str,
    *,
    start: float | None,
    end: float | None,
    number_of_days: int | None,
    timezone: str,
    max_slots: int | None,
    report_busy: bool,
) -> dict[str, Any]:
    """Slots of the service where scheduled callbacks can be booked."""
    svc = await require_service(rt, tenant, service_name)
    cfg = svc.config
    now = time.time()
    start = now if start is None else start
    if end is None:
        end = start + (number_of_days or 1) * 86400
    if end <= start:
        raise BadRequest("end: must be after start")
    if end - start > 31 * 86400:
        raise BadRequest("end: the range may span at most 31 days")
    async with rt.engine.connect() as conn:
        usage = await repo.slot_usage(conn, svc.id, start - 3600, end)
    slots = []
    horizon = now + rt.settings.booking_horizon_days * 86400
    for s in svc.calendar.iter_slots(start, end):
        if s.end <= now:
            continue
        if s.start > horizon:  # create would refuse it
            break
        free = None if s.total is None else max(0, s.total - usage.get(s.start, 0))
        if free == 0 and not report_busy:
            continue
        slots.append(
            {
                "utcTime": utc_iso(s.start),
                "localTime": local_iso(s.start, timezone),
                "capacity": free,
                "total": s.total,
            }
        )
        if max_slots is not None and len(slots) >= max_slots:
            break
    return {"slots": slots, "durationMin": cfg.capacity.slot_minutes, "timezone": timezone}


async def open_for(
    rt: Container, tenant: Tenant, service_name: str, start: float | None
) -> dict[str, Any]:
    """Seconds until the service closes, 0 when closed."""
    svc = await require_service(rt, tenant, service_name)
    t = time.time() if start is None else start
    return {"openFor": int(svc.calendar.open_for(t))}


async def queue_status(rt: Container, tenant: Tenant, queue: str) -> dict[str, Any]:
    """Whether immediate and scheduled callbacks should be offered now, with the EWT."""
    svc = await require_service(rt, tenant, queue)
    cfg = svc.config
    now = time.time()
    async with rt.engine.connect() as conn:
        ewt = await estimate_wait(rt, conn, svc, "mode2")
    remaining = svc.calendar.open_for(now)
    offer_now = cfg.immediate_enabled and remaining > 0 and (ewt < 0 or ewt < remaining)
    if ewt < 0 and await rt.transport.active_consumers() == 0:
        offer_now = False
    return {
        "ewt": ewt,
        "offerImmediateCallback": offer_now,
        "offerScheduledCallback": cfg.scheduled_enabled,
    }


async def estimated_wait_times(
    rt: Container, tenant: Tenant, queues: list[str], mode: str
) -> list[dict[str, Any]]:
    """EWT for each named virtual queue; unknown queues answer -1 with a message."""
    out = []
    async with rt.engine.connect() as conn:
        for name in queues:
            svc = await rt.service_cache.get(tenant.id, name)
            if svc is None:
                out.append(
                    {
                        "virtualQueue": name,
                        "estimatedWaitTime": -1,
                        "message": "unknown virtual queue",
                    }
                )
                continue
            ewt = await estimate_wait(rt, conn, svc, mode)
            msg = "no estimate yet" if ewt < 0 else "ok"
            out.append({"virtualQueue": name, "estimatedWaitTime": ewt, "message": msg})
    return out

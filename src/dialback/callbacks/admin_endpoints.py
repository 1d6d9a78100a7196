"""Admin API routes for callbacks across tenants: search, detail, cancel and reschedule."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.callbacks import repository as repo
from dialback.callbacks import service
from dialback.callbacks.schemas import RescheduleIn
from dialback.kit.errors import BadRequest, Conflict, NotFound, TooManyRequests
from dialback.kit.timefmt import iso, utc_iso
from dialback.tenants import repository as tenants_repo
from dialback.tenants.repository import tenant_named
from dialback.web.deps import container_of
from dialback.web.envelope import EnvelopeResponse, ok

router = APIRouter(tags=["admin: callbacks"])

_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"

CallbackIdPath = Annotated[str, Path(min_length=1, max_length=200, description="Callback id")]
StateFilter = Literal["SCHEDULED", "QUEUED", "ROUTING", "PROCESSING", "COMPLETED"]
TimeFilter = Annotated[str | None, Query(max_length=40, description="ISO-8601 time")]


def callback_item(row: Any, tenant_name: str | None) -> dict[str, Any]:
    """One callback as the admin list shows it."""
    return {
        "id": row.id,
        "tenant": tenant_name,
        "serviceName": row.service_name,
        "phoneNumber": row.phone_number,
        "callbackState": row.state,
        "callbackReason": row.reason,
        "desiredTime": iso(row.desired_time),
        "dueTime": iso(row.due_at),
        "createdTime": iso(row.created_at),
        "attempt": row.attempt,
        "priority": row.priority,
    }


def history_item(ev: Any) -> dict[str, Any]:
    """One state change of a callback."""
    return {
        "at": utc_iso(ev.at),
        "fromState": ev.from_state,
        "toState": ev.to_state,
        "reason": ev.reason,
        "attempt": ev.attempt,
        "source": ev.source,
    }


async def callback_detail(conn: AsyncConnection, callback_id: str) -> dict[str, Any]:
    """A callback with its user data and history, or 404."""
    row = await repo.find_callback(conn, callback_id) if _ID_RE.match(callback_id) else None
    if row is None:
        raise NotFound(f"no callback with id {callback_id!r}")
    names = await tenants_repo.tenant_names(conn, {row.tenant_id})
    history = await repo.callback_history(conn, row.id)
    return {
        **callback_item(row, names.get(row.tenant_id)),
        "cbOfferType": row.offer_type,
        "language": row.language,
        "maxAttempts": row.max_attempts,
        "lastReason": row.last_reason,
        "updatedTime": iso(row.updated_at),
        "completedTime": iso(row.completed_at),
        "userData": row.user_data,
        "history": [history_item(ev) for ev in history],
    }


@router.get("/callbacks")
async def list_callbacks(
    request: Request,
    tenant: Annotated[str | None, Query(max_length=100, pattern=_NAME_PATTERN)] = None,
    state: StateFilter | None = None,
    service_name: Annotated[
        str | None, Query(alias="service", max_length=100, pattern=_NAME_PATTERN)
    ] = None,
    createdFrom: TimeFilter = None,
    createdTo: TimeFilter = None,
    dueFrom: TimeFilter = None,
    dueTo: TimeFilter = None,
    limit: Annotated[int, Query(ge=1, le=250)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> EnvelopeResponse:
    """Callbacks of every tenant, newest first, filtered and paged."""
    bounds = {
        name: service.parse_time_param(name, value, None)
        for name, value in (
            ("createdFrom", createdFrom),
            ("createdTo", createdTo),
            ("dueFrom", dueFrom),
            ("dueTo", dueTo),
        )
    }
    async with container_of(request).engine.connect() as conn:
        tenant_id = (await tenant_named(conn, tenant)).id if tenant is not None else None
        rows, total = await repo.search_callbacks(
            conn,
            tenant_id=tenant_id,
            state=state,
            service_name=service_name,
            created_from=bounds["createdFrom"],
            created_to=bounds["createdTo"],
            due_from=bounds["dueFrom"],
            due_to=bounds["dueTo"],
            limit=limit,
            offset=offset,
        )
        names = await tenants_repo.tenant_names(conn, {r.tenant_id for r in rows})
    items = [callback_item(r, names.get(r.tenant_id)) for r in rows]
    return ok({"items": items, "total": total, "limit": limit, "offset": offset})


@router.get("/callbacks/{callback_id}")
async def get_callback(callback_id: CallbackIdPath, request: Request) -> EnvelopeResponse:
    """One callback with its user data and state history."""
    async with container_of(request).engine.connect() as conn:
        return ok(await callback_detail(conn, callback_id))


@router.post("/callbacks/{callback_id}/cancel")
async def cancel_callback(callback_id: CallbackIdPath, request: Request) -> EnvelopeResponse:
    """Cancel a callback no agent is handling yet (409 when PROCESSING or COMPLETED)."""
    rt = container_of(request)
    async with rt.engine.connect() as conn:
        row = await repo.find_callback(conn, callback_id) if _ID_RE.match(callback_id) else None
        tenant = await tenants_repo.get_tenant(conn, row.tenant_id) if row is not None else None
    if row is None or tenant is None:
        raise NotFound(f"no callback with id {callback_id!r}")
    await service.cancel_callback(rt, tenant, callback_id, source="admin")
    async with rt.engine.connect() as conn:
        return ok(await callback_detail(conn, callback_id))


@router.post("/callbacks/{callback_id}/reschedule")
async def reschedule_callback(
    callback_id: CallbackIdPath, body: RescheduleIn, request: Request
) -> EnvelopeResponse:
    """Move a SCHEDULED callback to another time that is open and has capacity."""
    rt = container_of(request)
    now = time.time()
    due = body.desiredTime.timestamp()
    if due <= now:
        raise BadRequest("desiredTime: must be in the future")
    horizon = rt.settings.booking_horizon_days
    if due > now + horizon * 86400:
        raise BadRequest(f"desiredTime: is more than {horizon} days ahead")
    async with rt.engine.begin() as conn:
        row = (
            await repo.find_callback(conn, callback_id, lock=True)
            if _ID_RE.match(callback_id)
            else None
        )
        if row is None:
            raise NotFound(f"no callback with id {callback_id!r}")
        if row.state != "SCHEDULED":
            detail = f"COMPLETED ({row.reason})" if row.state == "COMPLETED" else row.state
            raise Conflict(f"callback is {detail}; only SCHEDULED callbacks can be rescheduled")
        if row.lease_expires_at is not None and row.lease_expires_at > now:
            # The monitor is publishing it right now; moving it would strand the dispatch.
            raise Conflict(
                "callback is being dispatched right now; only SCHEDULED callbacks "
                "that are not yet due can be rescheduled"
            )
        svc = await rt.service_cache.get(row.tenant_id, row.service_name)
        if svc is None or svc.id != row.service_id:
            raise Conflict(f"the callback's service {row.service_name!r} no longer exists")
        slot = svc.calendar.slot_for(due)
        if slot is None:
            nxt = svc.calendar.next_opening(due)
            hint = f"; the next opening is {iso(nxt)}" if nxt else ""
            raise BadRequest(f"desiredTime: is outside the business hours of {svc.name!r}{hint}")
        slot_start: float | None = None
        if slot.total is not None:
            if row.slot_start != slot.start:
                if not await repo.reserve_capacity(conn, svc.id, slot.start, slot.total):
                    proposals = await service.propose_slots(conn, svc, slot.end, now)
                    raise TooManyRequests(
                        f"desiredTime: the slot starting {iso(slot.start)} is full",
                        data={"slots": proposals},
                    )
                if row.slot_start is not None:
                    await repo.release_capacity(conn, svc.id, row.slot_start)
            slot_start = slot.start
        elif row.slot_start is not None:
            await repo.release_capacity(conn, svc.id, row.slot_start)
        await repo.reschedule(conn, row, due, slot_start, now)
        return ok(await callback_detail(conn, callback_id))

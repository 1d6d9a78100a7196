"""Admin API routes for callbacks across tenants: search, export, detail, cancel (one or many),
reschedule and recreate."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dialback.callbacks import views
from dialback.callbacks.lifecycle import StateName
from dialback.callbacks.repository import CallbackFilter
from dialback.callbacks.schemas import RecreateIn, RescheduleIn, parse_time_param
from dialback.identity.roles import Permission, Principal
from dialback.kit.names import NAME_PATTERN
from dialback.web.deps import ContainerDep, requires
from dialback.web.envelope import EnvelopeResponse, ok

router = APIRouter(tags=["admin: callbacks"])


CallbackIdPath = Annotated[str, Path(min_length=1, max_length=200, description="Callback id")]
TimeFilter = Annotated[str | None, Query(max_length=40, description="ISO-8601 time")]
Reader = Annotated[Principal, requires(Permission.CALLBACKS_READ)]
Writer = Annotated[Principal, requires(Permission.CALLBACKS_WRITE)]
Exporter = Annotated[Principal, requires(Permission.CALLBACKS_EXPORT)]
PhoneFilter = Annotated[
    str | None,
    Query(
        max_length=40,
        description="the number in full, read as bookings read it, matched exactly",
    ),
]
SortName = Literal["-createdTime", "dueTime", "-dueTime"]


class BulkCancelIn(BaseModel):
    """Admin: cancel several callbacks."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(max_length=200)]] = Field(max_length=10_000)


def _filter(
    state: str | None,
    service_name: str | None,
    created_from: str | None,
    created_to: str | None,
    due_from: str | None,
    due_to: str | None,
    parked: bool | None,
    phone: str | None,
) -> CallbackFilter:
    return CallbackFilter(
        state=state,
        service_name=service_name,
        created_from=parse_time_param("createdFrom", created_from, None),
        created_to=parse_time_param("createdTo", created_to, None),
        due_from=parse_time_param("dueFrom", due_from, None),
        due_to=parse_time_param("dueTo", due_to, None),
        parked=parked,
        phone_number=phone,
    )


TenantFilter = Annotated[str | None, Query(max_length=100, pattern=NAME_PATTERN)]
ServiceFilter = Annotated[str | None, Query(alias="service", max_length=100, pattern=NAME_PATTERN)]
ParkedFilter = Annotated[
    bool | None, Query(description="true: only callbacks the monitor parked; false: none")
]


@router.get("/callbacks")
async def list_callbacks(
    c: ContainerDep,
    who: Reader,
    tenant: TenantFilter = None,
    state: StateName | None = None,
    service_name: ServiceFilter = None,
    createdFrom: TimeFilter = None,
    createdTo: TimeFilter = None,
    dueFrom: TimeFilter = None,
    dueTo: TimeFilter = None,
    parked: ParkedFilter = None,
    phoneNumber: PhoneFilter = None,
    sort: Annotated[
        SortName, Query(description="-createdTime (newest first), dueTime or -dueTime")
    ] = "-createdTime",
    limit: Annotated[int, Query(ge=1, le=250)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> EnvelopeResponse:
    """Callbacks of every tenant, newest first (or by due time), filtered and paged."""
    where = _filter(
        state, service_name, createdFrom, createdTo, dueFrom, dueTo, parked, phoneNumber
    )
    page = await c.callbacks.search(
        tenant, where, limit=limit, offset=offset, scope=who.tenants, sort=sort
    )
    return ok(views.admin_page(page, limit, offset))


@router.get("/callbacks/export")
async def export_callbacks(
    c: ContainerDep,
    who: Exporter,
    tenant: TenantFilter = None,
    state: StateName | None = None,
    service_name: ServiceFilter = None,
    createdFrom: TimeFilter = None,
    createdTo: TimeFilter = None,
    dueFrom: TimeFilter = None,
    dueTo: TimeFilter = None,
    parked: ParkedFilter = None,
    phoneNumber: PhoneFilter = None,
) -> StreamingResponse:
    """Every callback matching the filters (as the search) as CSV, streamed: numbers masked,
    times in UTC, no userData."""
    where = _filter(
        state, service_name, createdFrom, createdTo, dueFrom, dueTo, parked, phoneNumber
    )
    batches = await c.callbacks.export(tenant, where, scope=who.tenants)
    return StreamingResponse(
        views.export_csv(batches),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="callbacks.csv"'},
    )


@router.post("/callbacks/cancel")
async def bulk_cancel_callbacks(
    body: BulkCancelIn, c: ContainerDep, who: Writer
) -> EnvelopeResponse:
    """Cancel up to 250 callbacks; each refused one (PROCESSING, COMPLETED, not found) with why."""
    return ok(views.bulk_cancel(await c.callbacks.bulk_cancel(body.ids, who.tenants)))


@router.get("/callbacks/{callback_id}")
async def get_callback(
    callback_id: CallbackIdPath, c: ContainerDep, who: Reader
) -> EnvelopeResponse:
    """One callback with its state history, and its user data for the roles that may see it."""
    detail = await c.callbacks.detail(callback_id, who.tenants)
    return ok(views.admin_detail(detail, user_data=who.can(Permission.CALLBACKS_USERDATA)))


@router.post("/callbacks/{callback_id}/cancel")
async def cancel_callback(
    callback_id: CallbackIdPath, c: ContainerDep, who: Writer
) -> EnvelopeResponse:
    """Cancel a callback no agent is handling yet (409 when PROCESSING or COMPLETED)."""
    return ok(views.admin_detail(await c.callbacks.admin_cancel(callback_id, who.tenants)))


@router.post("/callbacks/{callback_id}/reschedule")
async def reschedule_callback(
    callback_id: CallbackIdPath, body: RescheduleIn, c: ContainerDep, who: Writer
) -> EnvelopeResponse:
    """Move a SCHEDULED callback to another time that is open and has capacity."""
    detail = await c.callbacks.reschedule(callback_id, body.desiredTime.timestamp(), who.tenants)
    return ok(views.admin_detail(detail))


@router.post("/callbacks/{callback_id}/recreate")
async def recreate_callback(
    callback_id: CallbackIdPath, c: ContainerDep, who: Writer, body: RecreateIn | None = None
) -> EnvelopeResponse:
    """Book a new callback from this one's data (immediate, or at ``desiredTime``) through
    create's rules; the new callback's id."""
    at = body.desiredTime.timestamp() if body is not None and body.desiredTime else None
    return ok({"id": await c.callbacks.recreate(callback_id, who.tenants, desired=at)})

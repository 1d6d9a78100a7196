"""Admin API routes for callbacks across tenants: search, export, detail, cancel (one or many),
reschedule and recreate."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dialback.callbacks import views
from dialback.callbacks.query import CallbackQuery, callback_query
from dialback.callbacks.schemas import RecreateIn, RescheduleIn
from dialback.identity.roles import Permission, Principal
from dialback.web.deps import ContainerDep, requires
from dialback.web.envelope import EnvelopeResponse, ok

router = APIRouter(tags=["admin: callbacks"])


CallbackIdPath = Annotated[str, Path(min_length=1, max_length=200, description="Callback id")]
Reader = Annotated[Principal, requires(Permission.CALLBACKS_READ)]
Writer = Annotated[Principal, requires(Permission.CALLBACKS_WRITE)]
Exporter = Annotated[Principal, requires(Permission.CALLBACKS_EXPORT)]
CallbackQueryDep = Annotated[CallbackQuery, Depends(callback_query)]
SortName = Literal["-createdTime", "dueTime", "-dueTime"]


class BulkCancelIn(BaseModel):
    """Admin: cancel several callbacks."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(max_length=200)]] = Field(max_length=10_000)


@router.get("/callbacks")
async def list_callbacks(
    c: ContainerDep,
    who: Reader,
    q: CallbackQueryDep,
    sort: Annotated[
        SortName, Query(description="-createdTime (newest first), dueTime or -dueTime")
    ] = "-createdTime",
    limit: Annotated[int, Query(ge=1, le=250)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> EnvelopeResponse:
    """Callbacks of every tenant, newest first (or by due time), filtered and paged."""
    page = await c.callbacks.search(
        q.tenant, q.where, limit=limit, offset=offset, scope=who.tenants, sort=sort
    )
    return ok(views.admin_page(page, limit, offset))


@router.get("/callbacks/export")
async def export_callbacks(
    c: ContainerDep,
    who: Exporter,
    q: CallbackQueryDep,
) -> StreamingResponse:
    """Every callback matching the filters (as the search) as CSV, streamed: numbers masked,
    times in UTC, no userData."""
    batches = await c.callbacks.export(q.tenant, q.where, scope=who.tenants)
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

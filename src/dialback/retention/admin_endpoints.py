"""Admin API routes of erasure (GDPR) and its audit log (internal port, bearer token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from dialback.identity.roles import Permission, Principal
from dialback.kit.names import NAME_PATTERN
from dialback.retention import views
from dialback.retention.schemas import NumberErasureIn
from dialback.web.deps import ContainerDep, requires
from dialback.web.envelope import EnvelopeResponse, ok
from dialback.web.params import TenantPath

router = APIRouter(tags=["admin: erasure"])

CallbackIdPath = Annotated[str, Path(min_length=1, max_length=200, description="Callback id")]
Eraser = Annotated[Principal, requires(Permission.CALLBACKS_ERASE)]


@router.delete("/callbacks/{callback_id}")
async def erase_callback(
    callback_id: CallbackIdPath, c: ContainerDep, admin: Eraser
) -> EnvelopeResponse:
    """Delete a callback and its history, cancelling it first when open (409 while an agent
    handles it); audited."""
    return ok(
        views.erasure_out(await c.retention.erase_callback(callback_id, admin.actor, admin.tenants))
    )


@router.post("/tenants/{tenant}/erasure")
async def erase_number(
    tenant: TenantPath, body: NumberErasureIn, c: ContainerDep, admin: Eraser
) -> EnvelopeResponse:
    """Erase everything the tenant holds about a phone number; audited."""
    country = body.default_country.upper() if body.default_country else None
    erasure = await c.retention.erase_number(tenant, body.phone_number, country, admin.actor)
    return ok(views.erasure_out(erasure))


@router.get("/erasure-audit", dependencies=[requires(Permission.AUDIT_READ, every_tenant=True)])
async def erasure_audit(
    c: ContainerDep,
    tenant: Annotated[str | None, Query(max_length=100, pattern=NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=250)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> EnvelopeResponse:
    """The erasure audit log, newest first."""
    rows, total = await c.retention.audit_log(tenant, limit=limit, offset=offset)
    return ok(views.audit_page(rows, total, limit, offset))

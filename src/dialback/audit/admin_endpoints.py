"""Admin API route of the audit log (internal port)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from dialback.audit import views
from dialback.audit.repository import AuditFilter
from dialback.callbacks.schemas import parse_time_param
from dialback.identity.roles import Permission, Principal
from dialback.kit.names import NAME_PATTERN
from dialback.kit.text import SafeText
from dialback.web.deps import ContainerDep, requires
from dialback.web.envelope import EnvelopeResponse, ok

router = APIRouter(tags=["admin: audit"])

Text = Annotated[str | None, Query(min_length=1, max_length=200), SafeText]
TimeFilter = Annotated[str | None, Query(max_length=40, description="ISO-8601 time")]


@router.get("/audit")
async def audit_log(
    c: ContainerDep,
    who: Annotated[Principal, requires(Permission.AUDIT_READ)],
    tenant: Annotated[str | None, Query(max_length=100, pattern=NAME_PATTERN)] = None,
    actor: Text = None,
    action: Text = None,
    objectType: Text = None,
    objectId: Text = None,
    callbackId: Text = None,
    outcome: Literal["ok", "denied", "failed"] | None = None,
    corrId: Text = None,
    since: TimeFilter = None,
    until: TimeFilter = None,
    limit: Annotated[int, Query(ge=1, le=250)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> EnvelopeResponse:
    """The audit log, newest first: filtered by tenant, actor, action, object, callback,
    outcome, corrId and time; a scoped reader sees its tenants' entries only."""
    where = AuditFilter(
        tenants=who.tenants,
        tenant=tenant,
        actor=actor,
        action=action,
        object_type=objectType,
        object_id=objectId,
        callback_id=callbackId,
        outcome=outcome,
        corr_id=corrId,
        since=parse_time_param("since", since, None),
        until=parse_time_param("until", until, None),
    )
    page = await c.audit.search(where, limit=limit, offset=offset)
    return ok(views.page_out(page, limit, offset))

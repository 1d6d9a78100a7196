"""Admin routes of Click-To-Call-In: groups per tenant, request history, the dial-in match."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from dialback.callins.schemas import CallInGroupConfig, MatchIn
from dialback.callins.views import deleted_out, group_out, page_out, request_out
from dialback.identity.roles import Permission, Principal
from dialback.kit.text import SafeText
from dialback.web.deps import ContainerDep, requires
from dialback.web.envelope import ERRORS, EnvelopeResponse, ok
from dialback.web.params import NamePath

router = APIRouter(tags=["admin: call-in"])

TenantName = Annotated[str, Path(min_length=1, max_length=100)]


@router.put(
    "/tenants/{tenant}/callin-groups/{name}",
    status_code=200,
    responses=ERRORS,
    dependencies=[requires(Permission.CALLINS_WRITE)],
)
async def put_group(
    tenant: TenantName, name: NamePath, config: CallInGroupConfig, c: ContainerDep
) -> EnvelopeResponse:
    """Create (201) or replace (200) a call-in group of the tenant."""
    group, created = await c.callins.put_group(tenant, name, config)
    return ok(group_out(group, tenant), status_code=201 if created else 200)


@router.get(
    "/tenants/{tenant}/callin-groups/{name}",
    responses=ERRORS,
    dependencies=[requires(Permission.CALLINS_READ)],
)
async def get_group(tenant: TenantName, name: NamePath, c: ContainerDep) -> EnvelopeResponse:
    """One call-in group with its configuration."""
    return ok(group_out(await c.callins.get_group(tenant, name), tenant))


@router.delete(
    "/tenants/{tenant}/callin-groups/{name}",
    responses=ERRORS,
    dependencies=[requires(Permission.CALLINS_WRITE)],
)
async def delete_group(tenant: TenantName, name: NamePath, c: ContainerDep) -> EnvelopeResponse:
    """Delete a call-in group; requests already handed out stay matchable until they expire."""
    await c.callins.delete_group(tenant, name)
    return ok(deleted_out(name))


@router.get(
    "/tenants/{tenant}/callin-groups",
    responses=ERRORS,
    dependencies=[requires(Permission.CALLINS_READ)],
)
async def list_groups(tenant: TenantName, c: ContainerDep) -> EnvelopeResponse:
    """The tenant's call-in groups by name."""
    return ok([group_out(g, tenant) for g in await c.callins.list_groups(tenant)])


@router.get("/call-in/requests", responses=ERRORS)
async def list_requests(
    c: ContainerDep,
    who: Annotated[Principal, requires(Permission.CALLINS_READ)],
    tenant: Annotated[str | None, Query(min_length=1, max_length=100), SafeText] = None,
    group: Annotated[str | None, Query(min_length=1, max_length=100), SafeText] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> EnvelopeResponse:
    """Call-in requests, newest first, optionally of one tenant and/or group."""
    page = await c.callins.list_requests(tenant, group, limit, offset, scope=who.tenants)
    return ok(page_out(page))


@router.post(
    "/call-in/match",
    responses=ERRORS,
    dependencies=[requires(Permission.CALLINS_MATCH, every_tenant=True)],
)
async def match(body: MatchIn, c: ContainerDep) -> EnvelopeResponse:
    """Routing lookup at dial-in: claim the newest open request for the number and code.

    Without ``accessCode`` only groups without codes match, by ``fromPhoneNumber``. A request
    matches once; expired, already matched or wrong-code lookups answer 404.
    """
    matched = await c.callins.match_request(body)
    assert matched.matched_at is not None
    return ok(request_out(matched, matched.matched_at))

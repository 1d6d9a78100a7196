"""Admin routes of Click-To-Call-In: groups per tenant, request history, the dial-in match."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from dialback.callins import service
from dialback.callins.schemas import CallInGroupConfig, MatchIn
from dialback.kit.text import SafeText
from dialback.web.deps import container_of
from dialback.web.envelope import ERRORS, EnvelopeResponse, ok

router = APIRouter(tags=["admin: call-in"])

TenantName = Annotated[str, Path(min_length=1, max_length=100)]
GroupName = Annotated[
    str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
]


@router.put("/tenants/{tenant}/callin-groups/{name}", status_code=200, responses=ERRORS)
async def put_group(
    tenant: TenantName, name: GroupName, config: CallInGroupConfig, request: Request
) -> EnvelopeResponse:
    """Create (201) or replace (200) a call-in group of the tenant."""
    group, created = await service.put_group(container_of(request), tenant, name, config)
    return ok(group, status_code=201 if created else 200)


@router.get("/tenants/{tenant}/callin-groups/{name}", responses=ERRORS)
async def get_group(tenant: TenantName, name: GroupName, request: Request) -> EnvelopeResponse:
    """One call-in group with its configuration."""
    return ok(await service.get_group(container_of(request), tenant, name))


@router.delete("/tenants/{tenant}/callin-groups/{name}", responses=ERRORS)
async def delete_group(tenant: TenantName, name: GroupName, request: Request) -> EnvelopeResponse:
    """Delete a call-in group; requests already handed out stay matchable until they expire."""
    return ok(await service.delete_group(container_of(request), tenant, name))


@router.get("/tenants/{tenant}/callin-groups", responses=ERRORS)
async def list_groups(tenant: TenantName, request: Request) -> EnvelopeResponse:
    """The tenant's call-in groups by name."""
    return ok(await service.list_groups(container_of(request), tenant))


@router.get("/call-in/requests", responses=ERRORS)
async def list_requests(
    request: Request,
    tenant: Annotated[str | None, Query(min_length=1, max_length=100), SafeText] = None,
    group: Annotated[str | None, Query(min_length=1, max_length=100), SafeText] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> EnvelopeResponse:
    """Call-in requests, newest first, optionally of one tenant and/or group."""
    return ok(await service.list_requests(container_of(request), tenant, group, limit, offset))


@router.post("/call-in/match", responses=ERRORS)
async def match(body: MatchIn, request: Request) -> EnvelopeResponse:
    """Routing lookup at dial-in: claim the newest open request for the number and code.

    Without ``accessCode`` only groups without codes match, by ``fromPhoneNumber``. A request
    matches once; expired, already matched or wrong-code lookups answer 404.
    """
    return ok(await service.match_request(container_of(request), body))

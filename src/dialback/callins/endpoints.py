"""Public Click-To-Call-In route (port 3005, GES v3 path)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from dialback.callbacks.endpoints import ERRORS, Status
from dialback.callins import service
from dialback.callins.schemas import CallInOut, CreateCallIn
from dialback.http import EnvelopeResponse, ok
from dialback.tenants.repository import Tenant
from dialback.tenants.service import api_tenant

router = APIRouter(prefix="/engagement/v3", tags=["call-in"])
TenantDep = Annotated[Tenant, Depends(api_tenant)]


class CallInEnvelope(BaseModel):
    status: Status
    data: CallInOut


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


@router.post("/call-in/requests/create", responses={200: {"model": CallInEnvelope}, **ERRORS})
async def create_callin(
    body: CreateCallIn, request: Request, tenant: TenantDep
) -> EnvelopeResponse:
    """Get a number to dial (and an access code when the group uses them) for a call-in group.

    ``expirationTime`` is epoch seconds (UTC), as GES returns it; ``accessCode`` is null when the
    group has no access codes, and ``fromPhoneNumber`` is then required.
    """
    return ok(await service.create_request(_runtime(request), tenant, body))

"""Public Click-To-Call-In route (port 3005, GES v3 path)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from dialback.callins.schemas import CallInOut, CreateCallIn
from dialback.callins.views import created_out
from dialback.web.deps import ContainerDep, TenantDep
from dialback.web.envelope import ERRORS, EnvelopeResponse, Status, ok

router = APIRouter(prefix="/engagement/v3", tags=["call-in"])


class CallInEnvelope(BaseModel):
    status: Status
    data: CallInOut


@router.post("/call-in/requests/create", responses={200: {"model": CallInEnvelope}, **ERRORS})
async def create_callin(body: CreateCallIn, c: ContainerDep, tenant: TenantDep) -> EnvelopeResponse:
    """Get a number to dial (and an access code when the group uses them) for a call-in group.

    ``expirationTime`` is epoch seconds (UTC), as GES returns it; ``accessCode`` is null when the
    group has no access codes, and ``fromPhoneNumber`` is then required.
    """
    return ok(created_out(await c.callins.create_request(tenant, body)))

"""Admin API routes for a tenant's services (virtual queues) and their configuration."""

from __future__ import annotations

from fastapi import APIRouter

from dialback.identity.roles import Permission
from dialback.services.schemas import ServiceConfig
from dialback.services.views import service_out, service_put_out
from dialback.web.deps import ContainerDep, requires
from dialback.web.envelope import EnvelopeResponse, ok
from dialback.web.params import NamePath, TenantPath

router = APIRouter(tags=["admin: services"])


@router.get("/tenants/{tenant}/services", dependencies=[requires(Permission.SERVICES_READ)])
async def list_services(tenant: TenantPath, c: ContainerDep) -> EnvelopeResponse:
    """The tenant's services by name."""
    return ok([service_out(r) for r in await c.services.list(tenant)])


@router.get("/tenants/{tenant}/services/{name}", dependencies=[requires(Permission.SERVICES_READ)])
async def get_service(tenant: TenantPath, name: NamePath, c: ContainerDep) -> EnvelopeResponse:
    """One service with its configuration."""
    return ok(service_out(await c.services.get(tenant, name)))


@router.put("/tenants/{tenant}/services/{name}", dependencies=[requires(Permission.SERVICES_WRITE)])
async def put_service(
    tenant: TenantPath, name: NamePath, body: ServiceConfig, c: ContainerDep
) -> EnvelopeResponse:
    """Create (201) or replace (200) a service's configuration; ``warnings`` lists surprises."""
    res = await c.services.put(tenant, name, body)
    return ok(service_put_out(res), status_code=201 if res.created else 200)


@router.delete(
    "/tenants/{tenant}/services/{name}", dependencies=[requires(Permission.SERVICES_WRITE)]
)
async def delete_service(tenant: TenantPath, name: NamePath, c: ContainerDep) -> EnvelopeResponse:
    """Delete a service that has no open callbacks (409 otherwise)."""
    return ok(service_out(await c.services.delete(tenant, name)))

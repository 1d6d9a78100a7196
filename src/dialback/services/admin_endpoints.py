"""Admin API routes for a tenant's services (virtual queues) and their configuration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy.exc import IntegrityError

from dialback.callbacks import repository as callbacks_repo
from dialback.kit.errors import Conflict, NotFound
from dialback.kit.timefmt import utc_iso
from dialback.services import repository as repo
from dialback.services.repository import ServiceRecord
from dialback.services.schemas import ServiceConfig
from dialback.tenants.admin_endpoints import TenantPath, tenant_named
from dialback.web.deps import container_of
from dialback.web.envelope import EnvelopeResponse, ok

router = APIRouter(tags=["admin: services"])

# The pattern of services.schemas.Name: a bad name is a 400 naming the path parameter.
ServiceName = Annotated[
    str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
]


def service_out(rec: ServiceRecord) -> dict[str, Any]:
    """A service as the admin API shows it."""
    return {
        "id": rec.id,
        "name": rec.name,
        "config": rec.config.dump(),
        "createdAt": utc_iso(rec.created_at),
        "updatedAt": utc_iso(rec.updated_at),
    }


@router.get("/tenants/{tenant}/services")
async def list_services(tenant: TenantPath, request: Request) -> EnvelopeResponse:
    """The tenant's services by name."""
    async with container_of(request).engine.connect() as conn:
        t = await tenant_named(conn, tenant)
        recs = await repo.list_services(conn, t.id)
    return ok([service_out(r) for r in recs])


@router.get("/tenants/{tenant}/services/{name}")
async def get_service(tenant: TenantPath, name: ServiceName, request: Request) -> EnvelopeResponse:
    """One service with its configuration."""
    async with container_of(request).engine.connect() as conn:
        t = await tenant_named(conn, tenant)
        rec = await repo.get_service(conn, t.id, name)
    if rec is None:
        raise NotFound(f"tenant {tenant!r} has no service named {name!r}")
    return ok(service_out(rec))


@router.put("/tenants/{tenant}/services/{name}")
async def put_service(
    tenant: TenantPath, name: ServiceName, body: ServiceConfig, request: Request
) -> EnvelopeResponse:
    """Create (201) or replace (200) a service's configuration."""
    rt = container_of(request)
    try:
        async with rt.engine.begin() as conn:
            t = await tenant_named(conn, tenant)
            created = not await repo.update_service(conn, t.id, name, body)
            if created:
                await repo.create_service(conn, t.id, name, body)
            rec = await repo.get_service(conn, t.id, name)
    except IntegrityError:
        # A concurrent PUT created the same service between our update and insert.
        raise Conflict(f"service {name!r} was created concurrently; retry the request") from None
    rt.services.invalidate(t.id, name)
    rt.events.service_known(tenant, name)
    assert rec is not None
    # The service's routing objects (stream, consumer groups) are provisioned on every change;
    # a failure is counted in RBAC_CREATE_VQ_PROXY_ERROR and retried by the monitor.
    data = {**service_out(rec), "routingProvisioned": await rt.provision_routing()}
    return ok(data, status_code=201 if created else 200)


@router.delete("/tenants/{tenant}/services/{name}")
async def delete_service(
    tenant: TenantPath, name: ServiceName, request: Request
) -> EnvelopeResponse:
    """Delete a service that has no open callbacks (409 otherwise)."""
    rt = container_of(request)
    async with rt.engine.begin() as conn:
        t = await tenant_named(conn, tenant)
        rec = await repo.get_service(conn, t.id, name)
        if rec is None:
            raise NotFound(f"tenant {tenant!r} has no service named {name!r}")
        # Open callbacks need their service for capacity, retries and rescheduling.
        n_open = await callbacks_repo.count_open_for_service(conn, rec.id)
        if n_open:
            raise Conflict(
                f"service {name!r} has {n_open} open callbacks; cancel them or let them complete"
            )
        await repo.delete_service(conn, t.id, name)
    rt.services.invalidate(t.id, name)
    return ok(service_out(rec))

"""Admin API routes for tenants and their API keys (internal port, bearer token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from dialback.identity.roles import Permission, Principal
from dialback.tenants.schemas import ApiKeyIn, TenantIn, TenantPatch
from dialback.tenants.views import key_out, tenant_out
from dialback.web.deps import ContainerDep, requires
from dialback.web.envelope import EnvelopeResponse, ok
from dialback.web.params import TenantPath

router = APIRouter(tags=["admin: tenants"])

KeyIdPath = Annotated[str, Path(min_length=1, max_length=200, description="API key id")]


@router.post(
    "/tenants",
    status_code=201,
    dependencies=[requires(Permission.TENANTS_WRITE, every_tenant=True)],
)
async def create_tenant(body: TenantIn, c: ContainerDep) -> EnvelopeResponse:
    """Create a tenant; 409 when the name is taken."""
    return ok(tenant_out(await c.tenants.create(body.name, body.settings)), status_code=201)


@router.get("/tenants")
async def list_tenants(
    c: ContainerDep, who: Annotated[Principal, requires(Permission.TENANTS_READ)]
) -> EnvelopeResponse:
    """The tenants the caller may see, oldest first."""
    return ok([tenant_out(r) for r in await c.tenants.list() if who.sees_tenant(r.name)])


@router.get("/tenants/{tenant}", dependencies=[requires(Permission.TENANTS_READ)])
async def get_tenant(tenant: TenantPath, c: ContainerDep) -> EnvelopeResponse:
    """One tenant by name."""
    return ok(tenant_out(await c.tenants.get(tenant)))


@router.patch("/tenants/{tenant}", dependencies=[requires(Permission.TENANTS_WRITE)])
async def patch_tenant(tenant: TenantPath, body: TenantPatch, c: ContainerDep) -> EnvelopeResponse:
    """Replace a tenant's settings and/or disable or enable it."""
    return ok(tenant_out(await c.tenants.patch(tenant, body)))


@router.post(
    "/tenants/{tenant}/api-keys",
    status_code=201,
    dependencies=[requires(Permission.API_KEYS_WRITE)],
)
async def create_api_key(
    tenant: TenantPath, c: ContainerDep, body: Annotated[ApiKeyIn | None, Body()] = None
) -> EnvelopeResponse:
    """Create an API key; the plaintext key is in this answer only (only its hash is stored)."""
    new = await c.tenants.create_key(tenant, body.name if body is not None else "default")
    return ok({**key_out(new.record), "key": new.key, "tenant": tenant}, status_code=201)


@router.get("/tenants/{tenant}/api-keys", dependencies=[requires(Permission.API_KEYS_READ)])
async def list_api_keys(tenant: TenantPath, c: ContainerDep) -> EnvelopeResponse:
    """The tenant's API keys, revoked ones included, by prefix only."""
    return ok([key_out(r) for r in await c.tenants.list_keys(tenant)])


@router.delete(
    "/tenants/{tenant}/api-keys/{keyId}", dependencies=[requires(Permission.API_KEYS_WRITE)]
)
async def revoke_api_key(tenant: TenantPath, keyId: KeyIdPath, c: ContainerDep) -> EnvelopeResponse:
    """Revoke an API key; it stops working at once in this process."""
    return ok(key_out(await c.tenants.revoke_key(tenant, keyId)))

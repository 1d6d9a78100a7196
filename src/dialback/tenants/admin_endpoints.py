"""Admin API routes for tenants and their API keys (internal port, bearer token)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.kit.errors import Conflict, NotFound
from dialback.kit.timefmt import utc_iso
from dialback.tenants import repository as repo
from dialback.tenants.repository import Tenant
from dialback.tenants.schemas import ApiKeyIn, TenantIn, TenantPatch
from dialback.web.deps import container_of
from dialback.web.envelope import EnvelopeResponse, ok

router = APIRouter(tags=["admin: tenants"])

# A name the Name pattern refuses cannot exist; such a path reads as "no such tenant".
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")

TenantPath = Annotated[str, Path(min_length=1, max_length=200, description="Tenant name")]
KeyIdPath = Annotated[str, Path(min_length=1, max_length=200, description="API key id")]


def tenant_out(row: dict[str, Any]) -> dict[str, Any]:
    """A tenant row as the admin API shows it."""
    return {
        "id": row["id"],
        "name": row["name"],
        "settings": row["settings"],
        "disabled": row["disabled"],
        "createdAt": utc_iso(row["created_at"]),
    }


def key_out(row: dict[str, Any]) -> dict[str, Any]:
    """An API key row as listed: the prefix, never the key or its hash."""
    revoked = row["revoked_at"]
    return {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "createdAt": utc_iso(row["created_at"]),
        "revokedAt": utc_iso(revoked) if revoked is not None else None,
    }


async def tenant_named(conn: AsyncConnection, name: str) -> Tenant:
    """The tenant with this name, or 404."""
    tenant = await repo.get_tenant_by_name(conn, name) if _NAME_RE.match(name) else None
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant


@router.post("/tenants", status_code=201)
async def create_tenant(body: TenantIn, request: Request) -> EnvelopeResponse:
    """Create a tenant; 409 when the name is taken."""
    rt = container_of(request)
    settings = body.settings.model_dump(mode="json", by_alias=True)
    try:
        async with rt.engine.begin() as conn:
            if await repo.get_tenant_by_name(conn, body.name) is not None:
                raise Conflict(f"name: a tenant named {body.name!r} already exists")
            await repo.create_tenant(conn, body.name, settings)
    except IntegrityError:
        # Another request created the same name between the check and the insert.
        raise Conflict(f"name: a tenant named {body.name!r} already exists") from None
    rt.events.tenant_known(body.name)
    async with rt.engine.connect() as conn:
        row = await repo.get_tenant_row(conn, body.name)
    assert row is not None
    return ok(tenant_out(row), status_code=201)


@router.get("/tenants")
async def list_tenants(request: Request) -> EnvelopeResponse:
    """All tenants, oldest first."""
    async with container_of(request).engine.connect() as conn:
        rows = await repo.list_tenants(conn)
    return ok([tenant_out(r) for r in rows])


@router.get("/tenants/{tenant}")
async def get_tenant(tenant: TenantPath, request: Request) -> EnvelopeResponse:
    """One tenant by name."""
    async with container_of(request).engine.connect() as conn:
        row = await repo.get_tenant_row(conn, tenant) if _NAME_RE.match(tenant) else None
    if row is None:
        raise NotFound(f"no tenant named {tenant!r}")
    return ok(tenant_out(row))


@router.patch("/tenants/{tenant}")
async def patch_tenant(tenant: TenantPath, body: TenantPatch, request: Request) -> EnvelopeResponse:
    """Replace a tenant's settings and/or disable or enable it."""
    rt = container_of(request)
    values: dict[str, Any] = {}
    if body.settings is not None:
        values["settings"] = body.settings.model_dump(mode="json", by_alias=True)
    if body.disabled is not None:
        values["disabled"] = body.disabled
    async with rt.engine.begin() as conn:
        t = await tenant_named(conn, tenant)
        if values:
            await repo.update_tenant(conn, t.id, **values)
        row = await repo.get_tenant_row(conn, tenant)
    # Cached key lookups carry the tenant's settings and enabled state.
    rt.keys.clear()
    assert row is not None
    return ok(tenant_out(row))


@router.post("/tenants/{tenant}/api-keys", status_code=201)
async def create_api_key(
    tenant: TenantPath, request: Request, body: Annotated[ApiKeyIn | None, Body()] = None
) -> EnvelopeResponse:
    """Create an API key; the plaintext key is in this answer only (only its hash is stored)."""
    rt = container_of(request)
    name = body.name if body is not None else "default"
    key = repo.generate_key()
    async with rt.engine.begin() as conn:
        t = await tenant_named(conn, tenant)
        kid = await repo.create_api_key(conn, t.id, name, key)
        rows = await repo.list_api_keys(conn, t.id)
    row = next(r for r in rows if r["id"] == kid)
    return ok({**key_out(row), "key": key, "tenant": tenant}, status_code=201)


@router.get("/tenants/{tenant}/api-keys")
async def list_api_keys(tenant: TenantPath, request: Request) -> EnvelopeResponse:
    """The tenant's API keys, revoked ones included, by prefix only."""
    async with container_of(request).engine.connect() as conn:
        t = await tenant_named(conn, tenant)
        rows = await repo.list_api_keys(conn, t.id)
    return ok([key_out(r) for r in rows])


@router.delete("/tenants/{tenant}/api-keys/{keyId}")
async def revoke_api_key(
    tenant: TenantPath, keyId: KeyIdPath, request: Request
) -> EnvelopeResponse:
    """Revoke an API key; it stops working at once in this process."""
    rt = container_of(request)
    async with rt.engine.begin() as conn:
        t = await tenant_named(conn, tenant)
        revoked = _ID_RE.match(keyId) is not None and await repo.revoke_api_key(conn, t.id, keyId)
        if not revoked:
            raise NotFound(f"keyId: tenant {tenant!r} has no active API key {keyId!r}")
        rows = await repo.list_api_keys(conn, t.id)
    rt.keys.clear()
    return ok(key_out(next(r for r in rows if r["id"] == keyId)))

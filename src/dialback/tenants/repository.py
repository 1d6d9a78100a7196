"""Persistence of tenants and API keys."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.db.schema import api_keys, tenants
from dialback.kit.errors import NotFound
from dialback.kit.names import is_name


def hash_key(key: str) -> str:
    """SHA-256 hex digest of an API key; only the digest is stored."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def generate_key() -> str:
    """A new random API key (UUIDv4, as GES suggests)."""
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))


@dataclass(frozen=True)
class Tenant:
    """A tenant as the services need it."""

    id: str
    name: str
    settings: dict[str, Any]
    disabled: bool


@dataclass(frozen=True)
class TenantRecord:
    """A tenant as the admin API shows it."""

    id: str
    name: str
    settings: dict[str, Any]
    disabled: bool
    created_at: float


@dataclass(frozen=True)
class ApiKey:
    """A stored API key: its prefix, never the key or its hash."""

    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None


def _tenant(row: Any) -> Tenant:
    return Tenant(row.id, row.name, row.settings, row.disabled)


def _tenant_record(row: Any) -> TenantRecord:
    return TenantRecord(row.id, row.name, row.settings, row.disabled, row.created_at)


def _api_key(row: Any) -> ApiKey:
    return ApiKey(row.id, row.tenant_id, row.name, row.prefix, row.created_at, row.revoked_at)


async def create_tenant(conn: AsyncConnection, name: str, settings: dict[str, Any]) -> Tenant:
    """Insert a tenant."""
    tid = str(uuid.uuid4())
    await conn.execute(
        tenants.insert().values(
            id=tid, name=name, settings=settings, disabled=False, created_at=time.time()
        )
    )
    return Tenant(tid, name, settings, False)


async def get_tenant(conn: AsyncConnection, tenant_id: str) -> Tenant | None:
    """A tenant by id."""
    row = (await conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id))).first()
    return _tenant(row) if row else None


async def get_tenant_by_name(conn: AsyncConnection, name: str) -> Tenant | None:
    """A tenant by name."""
    row = (await conn.execute(sa.select(tenants).where(tenants.c.name == name))).first()
    return _tenant(row) if row else None


async def tenant_named(conn: AsyncConnection, name: str) -> Tenant:
    """The tenant with this name, or 404."""
    # A name the Name pattern refuses cannot exist; such a path reads as "no such tenant".
    tenant = await get_tenant_by_name(conn, name) if is_name(name) else None
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant


async def list_tenants(conn: AsyncConnection) -> list[TenantRecord]:
    """All tenants, oldest first."""
    rows = await conn.execute(sa.select(tenants).order_by(tenants.c.created_at))
    return [_tenant_record(r) for r in rows]


async def update_tenant(conn: AsyncConnection, tenant_id: str, **values: Any) -> bool:
    """Update a tenant; False when it does not exist."""
    res = await conn.execute(tenants.update().where(tenants.c.id == tenant_id).values(**values))
    return res.rowcount > 0


async def create_api_key(conn: AsyncConnection, tenant_id: str, name: str, key: str) -> str:
    """Store the hash of ``key`` for the tenant; return the key id."""
    kid = str(uuid.uuid4())
    await conn.execute(
        api_keys.insert().values(
            id=kid,
            tenant_id=tenant_id,
            name=name,
            key_hash=hash_key(key),
            prefix=key[:8],
            created_at=time.time(),
        )
    )
    return kid


async def list_api_keys(conn: AsyncConnection, tenant_id: str) -> list[ApiKey]:
    """The tenant's keys (prefix only), oldest first."""
    rows = await conn.execute(
        sa.select(api_keys).where(api_keys.c.tenant_id == tenant_id).order_by(api_keys.c.created_at)
    )
    return [_api_key(r) for r in rows]


async def get_api_key(conn: AsyncConnection, tenant_id: str, key_id: str) -> ApiKey | None:
    """One of the tenant's keys by id."""
    q = sa.select(api_keys).where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id)
    row = (await conn.execute(q)).first()
    return _api_key(row) if row else None


async def revoke_api_key(conn: AsyncConnection, tenant_id: str, key_id: str) -> bool:
    """Revoke a key; False when the tenant has no such active key."""
    res = await conn.execute(
        api_keys.update()
        .where(
            api_keys.c.id == key_id,
            api_keys.c.tenant_id == tenant_id,
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=time.time())
    )
    return res.rowcount > 0


async def tenant_for_key_hash(conn: AsyncConnection, key_hash: str) -> Tenant | None:
    """The active tenant owning an unrevoked key with this hash."""
    q = (
        sa.select(tenants)
        .join(api_keys, api_keys.c.tenant_id == tenants.c.id)
        .where(
            api_keys.c.key_hash == key_hash,
            api_keys.c.revoked_at.is_(None),
            tenants.c.disabled.is_(False),
        )
    )
    row = (await conn.execute(q)).first()
    return _tenant(row) if row else None


async def get_tenant_record(conn: AsyncConnection, name: str) -> TenantRecord | None:
    """A tenant's full record (with ``created_at``) by name, for the admin API."""
    row = (await conn.execute(sa.select(tenants).where(tenants.c.name == name))).first()
    return _tenant_record(row) if row else None


async def tenant_names(conn: AsyncConnection, ids: set[str]) -> dict[str, str]:
    """Tenant id -> name for the given ids."""
    if not ids:
        return {}
    rows = await conn.execute(sa.select(tenants.c.id, tenants.c.name).where(tenants.c.id.in_(ids)))
    return {tid: name for tid, name in rows.all()}


async def tenant_ids(conn: AsyncConnection, names: Iterable[str]) -> set[str]:
    """The ids of the tenants with these names (names of no tenant are skipped)."""
    wanted = sorted(set(names))
    if not wanted:
        return set()
    rows = await conn.execute(sa.select(tenants.c.id).where(tenants.c.name.in_(wanted)))
    return {r.id for r in rows}

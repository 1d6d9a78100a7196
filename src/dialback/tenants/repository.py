"""Persistence of tenants and API keys."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.db.schema import api_keys, tenants


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


def _tenant(row: Any) -> Tenant:
    return Tenant(row.id, row.name, row.settings, row.disabled)


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


async def list_tenants(conn: AsyncConnection) -> list[dict[str, Any]]:
    """All tenants, oldest first."""
    rows = await conn.execute(sa.select(tenants).order_by(tenants.c.created_at))
    return [dict(r._mapping) for r in rows]


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


async def list_api_keys(conn: AsyncConnection, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's keys (prefix only), oldest first."""
    rows = await conn.execute(
        sa.select(api_keys).where(api_keys.c.tenant_id == tenant_id).order_by(api_keys.c.created_at)
    )
    return [dict(r._mapping) for r in rows]


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


async def get_tenant_row(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    """A tenant's full row (with ``created_at``) by name, for the admin API."""
    row = (await conn.execute(sa.select(tenants).where(tenants.c.name == name))).first()
    return dict(row._mapping) if row else None


async def tenant_names(conn: AsyncConnection, ids: set[str]) -> dict[str, str]:
    """Tenant id -> name for the given ids."""
    if not ids:
        return {}
    rows = await conn.execute(sa.select(tenants.c.id, tenants.c.name).where(tenants.c.id.in_(ids)))
    return {tid: name for tid, name in rows.all()}

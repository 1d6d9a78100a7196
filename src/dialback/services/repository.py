"""Persistence of services and a short-lived cache of their configuration."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dialback.db.schema import services
from dialback.services.schemas import ServiceConfig
from dialback.ttl_cache import TtlCache


@dataclass(frozen=True)
class ServiceRecord:
    """A service with its parsed configuration."""

    id: str
    tenant_id: str
    name: str
    config: ServiceConfig
    created_at: float
    updated_at: float


def _record(row: Any) -> ServiceRecord:
    return ServiceRecord(
        row.id,
        row.tenant_id,
        row.name,
        ServiceConfig.model_validate(row.config),
        row.created_at,
        row.updated_at,
    )


async def get_service(conn: AsyncConnection, tenant_id: str, name: str) -> ServiceRecord | None:
    """A tenant's service by name."""
    q = sa.select(services).where(services.c.tenant_id == tenant_id, services.c.name == name)
    row = (await conn.execute(q)).first()
    return _record(row) if row else None


async def list_services(conn: AsyncConnection, tenant_id: str) -> list[ServiceRecord]:
    """A tenant's services by name."""
    q = sa.select(services).where(services.c.tenant_id == tenant_id).order_by(services.c.name)
    return [_record(r) for r in await conn.execute(q)]


async def create_service(
    conn: AsyncConnection, tenant_id: str, name: str, config: ServiceConfig
) -> ServiceRecord:
    """Insert a service."""
    now = time.time()
    sid = str(uuid.uuid4())
    await conn.execute(
        services.insert().values(
            id=sid,
            tenant_id=tenant_id,
            name=name,
            config=config.dump(),
            created_at=now,
            updated_at=now,
        )
    )
    return ServiceRecord(sid, tenant_id, name, config, now, now)


async def update_service(
    conn: AsyncConnection, tenant_id: str, name: str, config: ServiceConfig
) -> bool:
    """Replace a service's configuration; False when it does not exist."""
    res = await conn.execute(
        services.update()
        .where(services.c.tenant_id == tenant_id, services.c.name == name)
        .values(config=config.dump(), updated_at=time.time())
    )
    return res.rowcount > 0


async def delete_service(conn: AsyncConnection, tenant_id: str, name: str) -> bool:
    """Delete a service; False when it does not exist."""
    res = await conn.execute(
        services.delete().where(services.c.tenant_id == tenant_id, services.c.name == name)
    )
    return res.rowcount > 0


class ServiceCache:
    """Service configurations cached per process for ``ttl`` seconds.

    Changes made through this process's admin API apply at once; other replicas see them
    within ``ttl`` (and one reload).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        ttl: float = 5.0,
        on_service: Callable[[ServiceRecord], None] | None = None,
    ) -> None:
        self.engine = engine
        self.on_service = on_service
        self._cache: TtlCache[tuple[str, str], ServiceRecord | None] = TtlCache(
            self._load, lambda _rec: ttl, max_entries=50_000
        )

    async def _load(self, key: tuple[str, str]) -> ServiceRecord | None:
        async with self.engine.connect() as conn:
            rec = await get_service(conn, *key)
        if rec is not None and self.on_service is not None:
            self.on_service(rec)
        return rec

    async def get(self, tenant_id: str, name: str) -> ServiceRecord | None:
        """The service, from cache when fresh."""
        return await self._cache.get((tenant_id, name))

    def invalidate(self, tenant_id: str, name: str) -> None:
        """Forget one service after a change."""
        self._cache.invalidate((tenant_id, name))

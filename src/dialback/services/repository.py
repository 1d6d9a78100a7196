"""Persistence of services and a short-lived cache of their configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dialback.db.named_configs import NamedConfig, NamedConfigs
from dialback.db.schema import services
from dialback.kit.ttl_cache import TtlCache
from dialback.services.calendar import ServiceCalendar
from dialback.services.schemas import ServiceConfig


@dataclass(frozen=True)
class ServiceRecord(NamedConfig[ServiceConfig]):
    """A stored service with its ``calendar``, compiled from its config when it is loaded."""

    calendar: ServiceCalendar = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "calendar", ServiceCalendar.compile(self.config))


_services: NamedConfigs[ServiceConfig, ServiceRecord] = NamedConfigs(
    services, ServiceConfig.model_validate, ServiceRecord
)
get_service = _services.get
list_services = _services.list
create_service = _services.create
update_service = _services.update
delete_service = _services.delete


async def default_countries(
    conn: AsyncConnection, tenant_ids: tuple[str, ...] | None, name: str | None = None
) -> list[str]:
    """The default countries (``validation.defaultCountry``) national numbers are read with by
    the services of these tenants (None: every tenant), only those called ``name`` if given."""
    q = sa.select(services.c.config)
    if tenant_ids is not None:
        q = q.where(services.c.tenant_id.in_(tenant_ids))
    if name is not None:
        q = q.where(services.c.name == name)
    found: dict[str, None] = {}
    for (config,) in await conn.execute(q):
        validation = config.get("validation") if isinstance(config, dict) else None
        country = validation.get("defaultCountry") if isinstance(validation, dict) else None
        found[str(country or "US").upper()] = None
    return list(found)


async def service_names(conn: AsyncConnection, tenant_ids: tuple[str, ...] | None) -> list[str]:
    """The distinct names of the services of these tenants (None: every tenant), sorted."""
    q = sa.select(services.c.name).distinct().order_by(services.c.name)
    if tenant_ids is not None:
        q = q.where(services.c.tenant_id.in_(tenant_ids))
    return [name for (name,) in await conn.execute(q)]


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

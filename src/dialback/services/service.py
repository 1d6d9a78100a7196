"""Service (virtual queue) use cases of the admin API; each method owns its transaction."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.callbacks import repository as callbacks_repo
from dialback.kit.errors import Conflict, Forbidden, NotFound
from dialback.observability.events import Events
from dialback.services import repository as repo
from dialback.services.repository import ServiceCache, ServiceRecord
from dialback.services.schemas import ServiceConfig
from dialback.tenants.repository import list_tenants, tenant_named


@dataclass(frozen=True)
class PutResult:
    """A service after a PUT: whether it was created, whether routing was provisioned, and what
    in the configuration its author may not expect."""

    record: ServiceRecord
    created: bool
    routing_provisioned: bool
    warnings: tuple[str, ...] = ()


def _check_scope(tenant: str, scope: frozenset[str] | None) -> None:
    if scope is not None and tenant not in scope:
        raise Forbidden(f"tenant {tenant!r} is outside your scope")


class ServiceAdmin:
    """List, get, put and delete a tenant's services, keeping the service cache in step."""

    def __init__(
        self,
        engine: AsyncEngine,
        service_cache: ServiceCache,
        events: Events,
        provision_routing: Callable[[], Awaitable[bool]],
    ) -> None:
        self.engine = engine
        self.service_cache = service_cache
        self.events = events
        self.provision_routing = provision_routing

    async def list(self, tenant: str) -> builtins.list[ServiceRecord]:
        """The tenant's services by name."""
        async with self.engine.connect() as conn:
            t = await tenant_named(conn, tenant)
            return await repo.list_services(conn, t.id)

    async def get(
        self, tenant: str, name: str, *, scope: frozenset[str] | None = None
    ) -> ServiceRecord:
        """One service of the tenant, or 404; ``scope``: the tenants the caller may see."""
        _check_scope(tenant, scope)
        async with self.engine.connect() as conn:
            t = await tenant_named(conn, tenant)
            rec = await repo.get_service(conn, t.id, name)
        if rec is None:
            raise NotFound(f"tenant {tenant!r} has no service named {name!r}")
        return rec

    async def put(
        self,
        tenant: str,
        name: str,
        config: ServiceConfig,
        *,
        scope: frozenset[str] | None = None,
        create_only: bool = False,
    ) -> PutResult:
        """Create or replace a service's configuration, then provision its routing objects;
        ``create_only``: 409 when the service exists already (a form that creates one)."""
        _check_scope(tenant, scope)
        try:
            async with self.engine.begin() as conn:
                t = await tenant_named(conn, tenant)
                if create_only and await repo.get_service(conn, t.id, name) is not None:
                    raise Conflict(f"name: tenant {tenant!r} already has a service named {name!r}")
                created = not await repo.update_service(conn, t.id, name, config)
                if created:
                    await repo.create_service(conn, t.id, name, config)
                rec = await repo.get_service(conn, t.id, name)
        except IntegrityError:
            # A concurrent PUT created the same service between our update and insert.
            raise Conflict(
                f"service {name!r} was created concurrently; retry the request"
            ) from None
        self.service_cache.invalidate(t.id, name)
        self.events.service_known(tenant, name)
        assert rec is not None
        # The service's routing objects (stream, consumer groups) are provisioned on every change;
        # a failure is counted in RBAC_CREATE_VQ_PROXY_ERROR and retried by the monitor.
        return PutResult(rec, created, await self.provision_routing(), tuple(config.warnings()))

    async def delete(
        self, tenant: str, name: str, *, scope: frozenset[str] | None = None
    ) -> ServiceRecord:
        """Delete a service that has no open callbacks (409 otherwise); returns what was deleted."""
        _check_scope(tenant, scope)
        async with self.engine.begin() as conn:
            t = await tenant_named(conn, tenant)
            rec = await repo.get_service(conn, t.id, name)
            if rec is None:
                raise NotFound(f"tenant {tenant!r} has no service named {name!r}")
            # Open callbacks need their service for capacity, retries and rescheduling.
            n_open = await callbacks_repo.count_open_for_service(conn, rec.id)
            if n_open:
                raise Conflict(
                    f"service {name!r} has {n_open} open callbacks; cancel them or let them "
                    "complete"
                )
            await repo.delete_service(conn, t.id, name)
        self.service_cache.invalidate(t.id, name)
        return rec

    async def by_tenant(
        self, scope: frozenset[str] | None
    ) -> builtins.list[tuple[str, builtins.list[ServiceRecord]]]:
        """The services of every tenant ``scope`` names (None: every tenant), per tenant name."""
        async with self.engine.connect() as conn:
            tenants = [t for t in await list_tenants(conn) if scope is None or t.name in scope]
            return [
                (t.name, await repo.list_services(conn, t.id))
                for t in sorted(tenants, key=lambda t: t.name)
            ]

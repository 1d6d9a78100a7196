"""ServiceAdmin and TenantAdmin on SQLite: transactions, cache invalidation, 404 and 409 answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.db.engine import create_engine
from dialback.db.migrations import migrate
from dialback.kit.errors import Conflict, NotFound
from dialback.observability.events import Events
from dialback.services.repository import ServiceCache
from dialback.services.schemas import ServiceConfig
from dialback.services.service import ServiceAdmin
from dialback.tenants.auth import KeyCache
from dialback.tenants.schemas import TenantPatch, TenantSettings
from dialback.tenants.service import TenantAdmin


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/admin.db")
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def keys(engine: AsyncEngine) -> KeyCache:
    return KeyCache(engine, ttl=60)


@pytest.fixture
def tenants(engine: AsyncEngine, keys: KeyCache) -> TenantAdmin:
    return TenantAdmin(engine, keys, Events())


async def test_tenants_and_keys(tenants: TenantAdmin, keys: KeyCache) -> None:
    rec = await tenants.create("acme", TenantSettings())
    assert rec.name == "acme" and not rec.disabled
    with pytest.raises(Conflict, match="name: a tenant named 'acme' already exists"):
        await tenants.create("acme", TenantSettings())
    assert [t.name for t in await tenants.list()] == ["acme"]
    for bad in ("nobody", "bad name!"):
        with pytest.raises(NotFound, match="no tenant named"):
            await tenants.get(bad)
    new = await tenants.create_key("acme", "ivr")
    assert new.record.prefix == new.key[:8] and new.record.revoked_at is None
    assert (await keys.lookup(new.key)) is not None  # now cached
    revoked = await tenants.revoke_key("acme", new.record.id)
    assert revoked.revoked_at is not None
    assert await keys.lookup(new.key) is None  # the cache was cleared
    with pytest.raises(NotFound, match="keyId: tenant 'acme' has no active API key"):
        await tenants.revoke_key("acme", new.record.id)
    with pytest.raises(NotFound, match="keyId"):
        await tenants.revoke_key("acme", "not/an id")
    assert [k.name for k in await tenants.list_keys("acme")] == ["ivr"]
    patched = await tenants.patch("acme", TenantPatch(disabled=True))
    assert patched.disabled


async def test_services_put_get_delete_keep_the_cache_in_step(
    engine: AsyncEngine, tenants: TenantAdmin
) -> None:
    await tenants.create("acme", TenantSettings())
    t = await tenants.named("acme")
    cache = ServiceCache(engine, ttl=60)
    provisioned: list[bool] = []

    async def provision() -> bool:
        provisioned.append(True)
        return False

    services = ServiceAdmin(engine, cache, Events(), provision)
    first = await services.put("acme", "sales", ServiceConfig())
    assert first.created and not first.routing_provisioned and provisioned == [True]
    cached = await cache.get(t.id, "sales")
    assert cached is not None and cached.calendar.slot_minutes == 30
    cfg = ServiceConfig.model_validate({"capacity": {"slotMinutes": 60}})
    again = await services.put("acme", "sales", cfg)
    assert not again.created and again.record.id == first.record.id
    cached = await cache.get(t.id, "sales")
    assert cached is not None and cached.calendar.slot_minutes == 60  # invalidated on put
    assert [s.name for s in await services.list("acme")] == ["sales"]
    assert (await services.delete("acme", "sales")).id == first.record.id
    assert await cache.get(t.id, "sales") is None  # invalidated on delete
    with pytest.raises(NotFound, match="tenant 'acme' has no service named 'sales'"):
        await services.get("acme", "sales")
    with pytest.raises(NotFound, match="no tenant named 'nobody'"):
        await services.list("nobody")

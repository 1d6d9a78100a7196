"""Authentication of the public API: API keys, cached."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.kit.errors import Unauthorized
from dialback.kit.ttl_cache import TtlCache
from dialback.tenants.repository import Tenant, hash_key, tenant_for_key_hash

_MAX_KEY_LEN = 256


class KeyCache:
    """API-key hash -> tenant, cached for ``ttl`` seconds (misses for a few seconds)."""

    def __init__(
        self, engine: AsyncEngine, ttl: float, on_tenant: Callable[[str, str], None] | None = None
    ) -> None:
        self.engine = engine
        self.on_tenant = on_tenant
        miss_ttl = min(ttl, 5.0)
        self._cache: TtlCache[str, Tenant | None] = TtlCache(
            self._load, lambda tenant: ttl if tenant else miss_ttl, max_entries=100_000
        )

    async def _load(self, digest: str) -> Tenant | None:
        async with self.engine.connect() as conn:
            tenant = await tenant_for_key_hash(conn, digest)
        if tenant is not None and self.on_tenant is not None:
            self.on_tenant(tenant.id, tenant.name)
        return tenant

    async def lookup(self, key: str) -> Tenant | None:
        """The tenant owning ``key``, or None."""
        return await self._cache.get(hash_key(key))

    async def authenticate(self, key: str | None) -> Tenant:
        """The tenant of an ``x-api-key`` value, or 401."""
        if not key:
            raise Unauthorized("missing x-api-key header")
        if len(key) > _MAX_KEY_LEN:
            raise Unauthorized("invalid x-api-key")
        tenant = await self.lookup(key)
        if tenant is None:
            raise Unauthorized("invalid x-api-key")
        return tenant

    def clear(self) -> None:
        """Forget everything (after a key is revoked or a tenant disabled)."""
        self._cache.clear()

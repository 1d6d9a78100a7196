"""Authentication: API keys for the public API, bearer tokens for the admin API."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.errors import ApiError, Unauthorized
from dialback.observability.logging import bind
from dialback.tenants.repository import Tenant, hash_key, tenant_for_key_hash
from dialback.ttl_cache import TtlCache

api_key_header = APIKeyHeader(name="x-api-key", auto_error=False, description="Tenant API key")
admin_bearer = HTTPBearer(auto_error=False, description="Admin token (DIALBACK_ADMIN_TOKENS)")

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

    def clear(self) -> None:
        """Forget everything (after a key is revoked or a tenant disabled)."""
        self._cache.clear()


async def api_tenant(request: Request, key: str | None = Security(api_key_header)) -> Tenant:
    """FastAPI dependency: the tenant of the request's ``x-api-key``, or 401."""
    if not key:
        raise Unauthorized("missing x-api-key header")
    if len(key) > _MAX_KEY_LEN:
        raise Unauthorized("invalid x-api-key")
    tenant = await request.app.state.runtime.keys.lookup(key)
    if tenant is None:
        raise Unauthorized("invalid x-api-key")
    request.state.tenant = tenant
    bind(tenant=tenant.name)
    return tenant


async def require_admin(
    request: Request, creds: HTTPAuthorizationCredentials | None = Security(admin_bearer)
) -> str:
    """FastAPI dependency: a valid admin bearer token, or 401."""
    tokens = request.app.state.runtime.settings.admin_token_list()
    if not tokens:
        raise ApiError(401, "the admin API is disabled: no DIALBACK_ADMIN_TOKENS configured")
    if creds is None:
        raise Unauthorized("missing Authorization: Bearer <admin token>")
    given = creds.credentials.encode()
    if not any(hmac.compare_digest(given, t.encode()) for t in tokens):
        raise Unauthorized("invalid admin token")
    return "admin"

"""The typed dependencies of the routes: the container, the caller's tenant, the admin check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from dialback.container import Container
from dialback.kit.context import bind
from dialback.kit.errors import Unauthorized
from dialback.tenants.auth import check_admin_token
from dialback.tenants.repository import Tenant
from dialback.web.client import client_address

api_key_header = APIKeyHeader(name="x-api-key", auto_error=False, description="Tenant API key")
admin_bearer = HTTPBearer(auto_error=False, description="Admin token (DIALBACK_ADMIN_TOKENS)")


def container_of(request: Request) -> Container:
    """The container that built the app serving ``request``."""
    container: Container = request.app.state.container
    return container


async def _container(request: Request) -> Container:
    # A coroutine, not a plain function: FastAPI runs a sync dependency in its thread pool,
    # a thread hop (and a wait for the loop) on every request that declares it.
    return container_of(request)


ContainerDep = Annotated[Container, Depends(_container)]
"""What a route declares to reach the services."""


async def api_tenant(request: Request, key: str | None = Security(api_key_header)) -> Tenant:
    """The tenant of the request's ``x-api-key``, or 401 (429 when the client's address
    failed too often: the brute-force limits)."""
    c = container_of(request)
    attempts = c.attempts
    # The hot path: nothing but an attribute test while no address is blocked on this replica.
    if attempts.blocking:
        await attempts.check("api_key", client_address(request, c.settings.trusted_proxy_networks))
    try:
        tenant = await c.keys.authenticate(key)
    except Unauthorized as exc:
        address = client_address(request, c.settings.trusted_proxy_networks)
        await attempts.failed("api_key", address, exc.message)
        raise
    request.state.tenant = tenant
    bind(tenant=tenant.name)
    return tenant


TenantDep = Annotated[Tenant, Depends(api_tenant)]
"""The authenticated tenant of a public API request."""


async def require_admin(
    request: Request, creds: HTTPAuthorizationCredentials | None = Security(admin_bearer)
) -> str:
    """A valid admin bearer token, or 401."""
    tokens = container_of(request).settings.admin_token_list()
    return check_admin_token(tokens, creds.credentials if creds is not None else None)


AdminDep = Annotated[str, Depends(require_admin)]
"""The calling admin's identity (a prefix of its token's hash), for the audit log."""

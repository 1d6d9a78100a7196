"""The typed dependencies of the routes: the container, the caller's tenant, the admin caller
and the permission each admin route requires."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from dialback.container import Container
from dialback.identity.roles import PERMISSION_TEXT, Permission, Principal
from dialback.kit.context import bind
from dialback.kit.errors import Forbidden, NotFound, Unauthorized
from dialback.tenants.repository import Tenant
from dialback.web.client import client_address

api_key_header = APIKeyHeader(name="x-api-key", auto_error=False, description="Tenant API key")
admin_bearer = HTTPBearer(
    auto_error=False,
    description="An admin token (DIALBACK_ADMIN_TOKENS) or an OIDC access token (JWT)",
)


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


async def admin_principal(
    request: Request, creds: HTTPAuthorizationCredentials | None = Security(admin_bearer)
) -> Principal:
    """Who calls the admin API: an admin token's principal or a verified OIDC access token's;
    401 otherwise."""
    c = container_of(request)
    address = client_address(request, c.settings.trusted_proxy_networks)
    token = creds.credentials if creds is not None else None
    principal = await c.authenticator.admin_caller(token, address)
    request.state.principal = principal
    bind(actor=principal.actor)
    return principal


def refusal(
    request: Request, principal: Principal, permission: Permission, *, every_tenant: bool
) -> str | None:
    """Why ``principal`` may not call this route (an admin route or a UI page) as its 403 says
    it: ``permission`` lacking, the path's ``{tenant}`` outside its scope, or a scoped operator
    acting on what belongs to no one tenant (``every_tenant``); None when it may."""
    if not principal.can(permission):
        roles = ", ".join(sorted(principal.roles)) or "none"
        return (
            f"{principal.actor} (roles: {roles}) may not {PERMISSION_TEXT[permission]} "
            f"(needs {permission.value})"
        )
    tenant = request.path_params.get("tenant")
    if isinstance(tenant, str) and not principal.sees_tenant(tenant):
        return f"tenant {tenant[:100]!r} is outside the scope of {principal.actor}"
    if every_tenant and not principal.unscoped:
        return (
            f"only an operator of every tenant may do this; {principal.actor} is scoped to "
            f"{', '.join(sorted(principal.tenants or ()))}"
        )
    return None


class Require:
    """The dependency of an admin route: the caller, allowed ``permission``, within the scope
    of the route's ``{tenant}``; ``every_tenant``: only an operator of every tenant (the route
    acts on what belongs to no one tenant)."""

    def __init__(self, permission: Permission, *, every_tenant: bool = False) -> None:
        self.permission = permission
        self.every_tenant = every_tenant

    async def __call__(
        self, request: Request, principal: Principal = Depends(admin_principal)
    ) -> Principal:
        refused = refusal(request, principal, self.permission, every_tenant=self.every_tenant)
        if refused is not None:
            raise Forbidden(refused)
        return principal


def requires(permission: Permission, *, every_tenant: bool = False) -> Any:
    """``Depends`` on ``Require(permission)``: for a route's ``dependencies`` or a parameter
    (``p: Annotated[Principal, requires(...)]``)."""
    return Depends(Require(permission, every_tenant=every_tenant))


def required_permission(dependant: Any) -> Require | None:
    """The ``Require`` a route's dependency tree holds (the role matrix and the docs read it)."""
    for dep in dependant.dependencies:
        if isinstance(dep.call, Require):
            return dep.call
        found = required_permission(dep)
        if found is not None:
            return found
    return None


def ensure_scope(principal: Principal, tenant: str, what: str) -> None:
    """404 naming ``what`` unless ``tenant`` is within the principal's scope (for an object
    found by id: a scoped operator learns nothing of other tenants, not even their names)."""
    if not principal.sees_tenant(tenant):
        raise NotFound(f"{what} not found in the tenants {principal.actor} may see")

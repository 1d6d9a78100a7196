"""Admin API routes for local users (internal port): list, create, read, change, reset a
password, delete. Never a password hash; a generated password only in the answer that made it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict, Field

from dialback.identity.roles import Permission
from dialback.identity.users import User, WithPassword, parse_roles, parse_tenants
from dialback.kit.timefmt import iso, utc_iso
from dialback.web.deps import ContainerDep, requires
from dialback.web.envelope import EnvelopeResponse, ok

router = APIRouter(tags=["admin: users"])

_READ = [requires(Permission.USERS_READ, every_tenant=True)]
_WRITE = [requires(Permission.USERS_WRITE, every_tenant=True)]

UsernamePath = Annotated[str, Path(min_length=1, max_length=64, description="user name")]


class UserIn(BaseModel):
    """A new local user."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    displayName: str = Field("", max_length=200)
    roles: list[str] = Field(min_length=1, max_length=4)
    tenants: list[str] | None = Field(
        None, max_length=1000, description="the tenants the user may see; null: every tenant"
    )
    password: str | None = Field(
        None, min_length=1, max_length=1024, description="omitted: one is generated and answered"
    )


class UserPatch(BaseModel):
    """Changes to a user; an omitted field stays as it is (``tenants: null``: every tenant)."""

    model_config = ConfigDict(extra="forbid")

    displayName: str | None = Field(None, max_length=200)
    roles: list[str] | None = Field(None, min_length=1, max_length=4)
    tenants: list[str] | None = Field(None, max_length=1000)
    disabled: bool | None = None


class PasswordIn(BaseModel):
    """A new password; omitted: one is generated and answered once."""

    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(None, min_length=1, max_length=1024)


def user_out(user: User) -> dict[str, Any]:
    """A user as the admin API shows it."""
    return {
        "username": user.username,
        "displayName": user.display_name,
        "roles": sorted(r.value for r in user.roles),
        "tenants": None if user.tenants is None else sorted(user.tenants),
        "disabled": user.disabled,
        "createdAt": utc_iso(user.created_at),
        "updatedAt": utc_iso(user.updated_at),
        "passwordChangedAt": utc_iso(user.password_changed_at),
        "lastLoginAt": iso(user.last_login_at),
    }


def _with_password(result: WithPassword) -> dict[str, Any]:
    out = user_out(result.user)
    if result.generated_password is not None:
        out["password"] = result.generated_password
    return out


@router.get("/users", dependencies=_READ)
async def list_users(c: ContainerDep) -> EnvelopeResponse:
    """Every local user, by name."""
    return ok([user_out(u) for u in await c.users.list()])


@router.post("/users", status_code=201, dependencies=_WRITE)
async def create_user(body: UserIn, c: ContainerDep) -> EnvelopeResponse:
    """Create a local user; 409 when the name is taken. Without ``password`` a generated one is
    in this answer only."""
    result = await c.users.add(
        body.username,
        parse_roles(body.roles),
        parse_tenants(body.tenants),
        password=body.password,
        display_name=body.displayName,
    )
    return ok(_with_password(result), status_code=201)


@router.get("/users/{username}", dependencies=_READ)
async def get_user(username: UsernamePath, c: ContainerDep) -> EnvelopeResponse:
    """One local user."""
    return ok(user_out(await c.users.get(username)))


@router.patch("/users/{username}", dependencies=_WRITE)
async def patch_user(username: UsernamePath, body: UserPatch, c: ContainerDep) -> EnvelopeResponse:
    """Change roles, tenant scope, display name or disable/enable; takes effect on the user's
    next request (a disabled user's sessions end)."""
    given = body.model_fields_set
    user = await c.users.update(
        username,
        roles=parse_roles(body.roles) if body.roles is not None else None,
        tenants=parse_tenants(body.tenants) if "tenants" in given else None,
        set_tenants="tenants" in given,
        disabled=body.disabled,
        display_name=body.displayName,
    )
    return ok(user_out(user))


@router.post("/users/{username}/password", dependencies=_WRITE)
async def reset_password(
    username: UsernamePath,
    c: ContainerDep,
    body: Annotated[PasswordIn | None, Body()] = None,
) -> EnvelopeResponse:
    """Set a new password (generated, and in this answer only, when none is given); the user's
    sessions end."""
    result = await c.users.reset_password(username, body.password if body is not None else None)
    return ok(_with_password(result))


@router.delete("/users/{username}", dependencies=_WRITE)
async def delete_user(username: UsernamePath, c: ContainerDep) -> EnvelopeResponse:
    """Delete a local user; its sessions end."""
    return ok(user_out(await c.users.remove(username)))

"""Local users: the use cases of the ``dialback users`` CLI, the admin API and the sign-in page.

A user name is stored lower-cased; a password only as an argon2id hash (identity.passwords).
"""

from __future__ import annotations

import asyncio
import builtins
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.identity import passwords
from dialback.identity import repository as repo
from dialback.identity.repository import UserRow
from dialback.identity.roles import Principal, Role, parse_role
from dialback.kit.errors import ApiError, BadRequest, Conflict, NotFound
from dialback.kit.names import is_name

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,63}$")
USERNAME_RULE = "1-64 characters: letters, digits and _ . @ -, starting with a letter or digit"


@dataclass(frozen=True)
class User:
    """A local user as the admin API and the CLI show it (never the password hash)."""

    username: str
    display_name: str
    roles: frozenset[Role]
    tenants: frozenset[str] | None
    disabled: bool
    created_at: float
    updated_at: float
    password_changed_at: float
    last_login_at: float | None

    def principal(self) -> Principal:
        """The principal this user acts as."""
        return Principal("local", self.username, self.roles, self.tenants, self.username)


@dataclass(frozen=True)
class WithPassword:
    """A user just created or reset, and the generated password (shown once), if any."""

    user: User
    generated_password: str | None


class BadCredentials(ApiError):
    """401: the sign-in failed; ``reason`` is for the audit log, never shown to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(401, "wrong user name or password")
        self.reason = reason


def _public(row: UserRow) -> User:
    return User(
        row.username,
        row.display_name,
        row.roles,
        row.tenants,
        row.disabled,
        row.created_at,
        row.updated_at,
        row.password_changed_at,
        row.last_login_at,
    )


def normalise_username(name: str) -> str:
    """The stored form of a user name (lower-cased), or 400."""
    username = name.strip().lower()
    if not USERNAME_RE.match(username):
        raise BadRequest(f"username: {name[:64]!r} is not a valid user name ({USERNAME_RULE})")
    return username


def parse_roles(names: Any) -> frozenset[Role]:
    """Roles from their names (at least one), or 400 naming the unknown one."""
    roles: set[Role] = set()
    for name in names or ():
        try:
            roles.add(parse_role(str(name)))
        except ValueError as exc:
            raise BadRequest(f"roles: {exc}") from None
    if not roles:
        raise BadRequest("roles: a user needs at least one role")
    return frozenset(roles)


def parse_tenants(names: Any) -> frozenset[str] | None:
    """A tenant scope (None: every tenant), or 400 naming the invalid name."""
    if names is None:
        return None
    scope = frozenset(str(n).strip() for n in names)
    bad = sorted(n for n in scope if not is_name(n))
    if bad:
        raise BadRequest(f"tenants: {bad[0][:100]!r} is not a valid tenant name")
    if not scope:
        raise BadRequest("tenants: give at least one tenant, or none for every tenant")
    return scope


def _check_password(username: str, password: str) -> None:
    try:
        passwords.check_policy(username, password)
    except passwords.PasswordRejected as exc:
        raise BadRequest(f"password: {exc}") from None


async def _hash(password: str) -> str:
    # ~0.1 s of CPU: off the event loop.
    return await asyncio.to_thread(passwords.hash_password, password)


class UserAdmin:
    """Local users (add, remove, reset password, set roles and scope, disable, list) and
    password sign-in; each method owns its transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def list(self) -> builtins.list[User]:
        """Every local user, by name."""
        async with self.engine.connect() as conn:
            return [_public(r) for r in await repo.list_users(conn)]

    async def get(self, username: str) -> User:
        """One user, or 404."""
        async with self.engine.connect() as conn:
            row = await repo.get_user(conn, username.strip().lower())
        if row is None:
            raise NotFound(f"no user named {username[:64]!r}")
        return _public(row)

    async def add(
        self,
        username: str,
        roles: frozenset[Role],
        tenants: frozenset[str] | None = None,
        *,
        password: str | None = None,
        display_name: str = "",
    ) -> WithPassword:
        """Create a user (409 when the name is taken); without ``password`` one is generated."""
        name = normalise_username(username)
        generated = None
        if password is None:
            password = generated = passwords.generate_password()
        _check_password(name, password)
        hashed = await _hash(password)
        try:
            async with self.engine.begin() as conn:
                if await repo.get_user(conn, name) is not None:
                    raise Conflict(f"username: a user named {name!r} already exists")
                await repo.insert_user(
                    conn, name, display_name.strip()[:200], hashed, roles, tenants
                )
        except IntegrityError:
            raise Conflict(f"username: a user named {name!r} already exists") from None
        return WithPassword(await self.get(name), generated)

    async def remove(self, username: str, *, by: Principal | None = None) -> User:
        """Delete a user and end its sessions; 404 when there is none; 409 when ``by`` is
        that user (no one removes their own account)."""
        user = await self.get(username)
        if _is_self(by, user):
            raise Conflict(f"username: {user.username} cannot remove their own account")
        async with self.engine.begin() as conn:
            await repo.delete_user(conn, user.username)
            await repo.end_sessions_of(conn, "local", user.username, "user_removed")
        return user

    async def reset_password(self, username: str, password: str | None = None) -> WithPassword:
        """Set a new password (generated when None) and end the user's sessions."""
        user = await self.get(username)
        generated = None
        if password is None:
            password = generated = passwords.generate_password()
        _check_password(user.username, password)
        hashed = await _hash(password)
        async with self.engine.begin() as conn:
            await repo.update_user(
                conn, user.username, password_hash=hashed, password_changed_at=time.time()
            )
            await repo.end_sessions_of(conn, "local", user.username, "password_reset")
        return WithPassword(await self.get(user.username), generated)

    async def update(
        self,
        username: str,
        *,
        roles: frozenset[Role] | None = None,
        tenants: frozenset[str] | None = None,
        set_tenants: bool = False,
        disabled: bool | None = None,
        display_name: str | None = None,
        by: Principal | None = None,
    ) -> User:
        """Change roles, tenant scope (``set_tenants``: ``tenants`` None means every tenant),
        disabled state or display name. A disabled or demoted user's live sessions follow at
        once (roles are re-read at each UI request); disabling also ends them. 409 when ``by``
        (the operator) would disable themselves or give up administering every tenant."""
        user = await self.get(username)
        if _is_self(by, user):
            _check_self_change(user, roles, tenants if set_tenants else user.tenants, disabled)
        values: dict[str, Any] = {}
        if roles is not None:
            values["roles"] = repo.roles_json(roles)
        if set_tenants:
            values["tenants"] = repo.tenants_json(tenants)
        if disabled is not None:
            values["disabled"] = disabled
        if display_name is not None:
            values["display_name"] = display_name.strip()[:200]
        if values:
            async with self.engine.begin() as conn:
                await repo.update_user(conn, user.username, **values)
                if disabled:
                    await repo.end_sessions_of(conn, "local", user.username, "user_disabled")
        return await self.get(user.username)

    async def authenticate(self, username: str, password: str) -> Principal:
        """The principal of a correct user name and password; BadCredentials otherwise.
        An unknown or disabled user costs one password hash too (no enumeration by timing)."""
        name = username.strip().lower()
        row = None
        if USERNAME_RE.match(name):
            async with self.engine.connect() as conn:
                row = await repo.get_user(conn, name)
        stored = row.password_hash if row is not None else None
        ok = await asyncio.to_thread(passwords.verify_password, stored, password)
        if row is None:
            raise BadCredentials("unknown user")
        if not ok:
            raise BadCredentials("wrong password")
        if row.disabled:
            raise BadCredentials("user disabled")
        if not row.roles:
            raise BadCredentials("user has no role")
        new_hash = None
        if passwords.needs_rehash(row.password_hash):
            new_hash = await _hash(password)
        async with self.engine.begin() as conn:
            await repo.touch_login(conn, name, new_hash)
        return _public(row).principal()

    async def current_principal(self, username: str) -> Principal | None:
        """The user's principal with its roles and scope as stored now; None when the user is
        gone, disabled or has no role."""
        async with self.engine.connect() as conn:
            row = await repo.get_user(conn, username)
        if row is None or row.disabled or not row.roles:
            return None
        return _public(row).principal()


def _is_self(by: Principal | None, user: User) -> bool:
    return by is not None and by.kind == "local" and by.name == user.username


def _check_self_change(
    user: User, roles: frozenset[Role] | None, tenants: frozenset[str] | None, disabled: bool | None
) -> None:
    # An operator who locks themselves out needs another administrator (or the CLI) to undo it.
    if disabled:
        raise Conflict(f"disabled: {user.username} cannot disable their own account")
    if roles is not None and Role.ADMINISTRATOR not in roles and Role.ADMINISTRATOR in user.roles:
        raise Conflict(f"roles: {user.username} cannot take away their own administrator role")
    if tenants is not None and user.tenants is None:
        raise Conflict(f"tenants: {user.username} cannot narrow their own scope to some tenants")


@dataclass(frozen=True)
class DemoAdmin:
    """The demo administrator ``make run`` prints."""

    username: str
    password: str
    generated: bool


async def ensure_demo_admin(users: UserAdmin, username: str, password: str | None) -> DemoAdmin:
    """Make sure the demo administrator exists, enabled, an administrator of every tenant, with
    ``password`` (pinned) or a freshly generated one (a new one on every start)."""
    name = normalise_username(username)
    generated = password is None
    secret = password if password is not None else passwords.generate_password()
    admin = frozenset({Role.ADMINISTRATOR})
    try:
        await users.add(name, admin, None, password=secret, display_name="Demo administrator")
    except Conflict:
        await users.update(name, roles=admin, set_tenants=True, tenants=None, disabled=False)
        current = await users.get(name)
        if generated or not await _matches(users, name, secret):
            await users.reset_password(current.username, secret)
    return DemoAdmin(name, secret, generated)


async def _matches(users: UserAdmin, name: str, password: str) -> bool:
    async with users.engine.connect() as conn:
        row = await repo.get_user(conn, name)
    assert row is not None
    return await asyncio.to_thread(passwords.verify_password, row.password_hash, password)

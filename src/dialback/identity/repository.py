"""Persistence of local users, UI sessions, OIDC sign-ins in progress and the session key."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dialback.db.schema import login_flows, session_keys, ui_sessions, users
from dialback.identity.roles import Role


@dataclass(frozen=True)
class UserRow:
    """A stored local user (``password_hash`` never leaves the identity package)."""

    id: str
    username: str
    display_name: str
    password_hash: str
    roles: frozenset[Role]
    tenants: frozenset[str] | None
    disabled: bool
    created_at: float
    updated_at: float
    password_changed_at: float
    last_login_at: float | None


def _roles_of(value: Any) -> frozenset[Role]:
    # A role the code no longer knows grants nothing (rather than failing every request).
    return frozenset(Role(r) for r in (value or []) if r in Role.__members__.values())


def _tenants_of(value: Any) -> frozenset[str] | None:
    return None if value is None else frozenset(str(t) for t in value)


def roles_json(roles: frozenset[Role]) -> list[str]:
    """Roles as stored: sorted names."""
    return sorted(r.value for r in roles)


def tenants_json(tenants: frozenset[str] | None) -> Any:
    """A tenant scope as stored: sorted names, or SQL NULL (not JSON null) for every tenant."""
    return sa.null() if tenants is None else sorted(tenants)


def _user(row: Any) -> UserRow:
    return UserRow(
        row.id,
        row.username,
        row.display_name,
        row.password_hash,
        _roles_of(row.roles),
        _tenants_of(row.tenants),
        bool(row.disabled),
        row.created_at,
        row.updated_at,
        row.password_changed_at,
        row.last_login_at,
    )


async def get_user(conn: AsyncConnection, username: str) -> UserRow | None:
    """A user by (lower-cased) name."""
    row = (await conn.execute(sa.select(users).where(users.c.username == username))).first()
    return _user(row) if row else None


async def list_users(conn: AsyncConnection) -> list[UserRow]:
    """Every user, by name."""
    return [_user(r) for r in await conn.execute(sa.select(users).order_by(users.c.username))]


async def insert_user(
    conn: AsyncConnection,
    username: str,
    display_name: str,
    password_hash: str,
    roles: frozenset[Role],
    tenants: frozenset[str] | None,
) -> None:
    """Insert a user (IntegrityError when the name is taken)."""
    now = time.time()
    await conn.execute(
        users.insert().values(
            id=str(uuid.uuid4()),
            username=username,
            display_name=display_name,
            password_hash=password_hash,
            roles=roles_json(roles),
            tenants=tenants_json(tenants),
            disabled=False,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
    )


async def update_user(conn: AsyncConnection, username: str, **values: Any) -> bool:
    """Update a user's columns (``updated_at`` too); False when there is no such user."""
    res = await conn.execute(
        users.update().where(users.c.username == username).values(**values, updated_at=time.time())
    )
    return res.rowcount > 0


async def touch_login(conn: AsyncConnection, username: str, new_hash: str | None) -> None:
    """Record a successful sign-in (and a re-made password hash, when there is one)."""
    values: dict[str, Any] = {"last_login_at": time.time()}
    if new_hash is not None:
        values["password_hash"] = new_hash
    await conn.execute(users.update().where(users.c.username == username).values(**values))


async def delete_user(conn: AsyncConnection, username: str) -> bool:
    """Delete a user; False when there is no such user."""
    res = await conn.execute(users.delete().where(users.c.username == username))
    return res.rowcount > 0


# --- sessions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    """A stored UI session."""

    id_hash: str
    principal_kind: str
    principal_name: str
    principal_subject: str
    roles: frozenset[Role]
    tenants: frozenset[str] | None
    csrf_token: str
    created_at: float
    last_seen_at: float
    expires_at: float
    ended_at: float | None


def _session(row: Any) -> SessionRow:
    return SessionRow(
        row.id_hash,
        row.principal_kind,
        row.principal_name,
        row.principal_subject,
        _roles_of(row.roles),
        _tenants_of(row.tenants),
        row.csrf_token,
        row.created_at,
        row.last_seen_at,
        row.expires_at,
        row.ended_at,
    )


async def insert_session(conn: AsyncConnection, **values: Any) -> None:
    """Insert a session row."""
    await conn.execute(ui_sessions.insert().values(**values))


async def get_session(conn: AsyncConnection, id_hash: str) -> SessionRow | None:
    """A session by the hash of its id."""
    q = sa.select(ui_sessions).where(ui_sessions.c.id_hash == id_hash)
    row = (await conn.execute(q)).first()
    return _session(row) if row else None


async def touch_session(conn: AsyncConnection, id_hash: str, now: float) -> None:
    """Record activity on a live session."""
    await conn.execute(
        ui_sessions.update()
        .where(ui_sessions.c.id_hash == id_hash, ui_sessions.c.ended_at.is_(None))
        .values(last_seen_at=now)
    )


async def end_session(conn: AsyncConnection, id_hash: str, reason: str) -> bool:
    """End a live session; False when it was not live."""
    res = await conn.execute(
        ui_sessions.update()
        .where(ui_sessions.c.id_hash == id_hash, ui_sessions.c.ended_at.is_(None))
        .values(ended_at=time.time(), end_reason=reason)
    )
    return res.rowcount > 0


async def end_sessions_of(conn: AsyncConnection, kind: str, name: str, reason: str) -> int:
    """End every live session of one principal; the number ended."""
    res = await conn.execute(
        ui_sessions.update()
        .where(
            ui_sessions.c.principal_kind == kind,
            ui_sessions.c.principal_name == name,
            ui_sessions.c.ended_at.is_(None),
        )
        .values(ended_at=time.time(), end_reason=reason)
    )
    return int(res.rowcount)


async def purge_sessions(conn: AsyncConnection, before: float) -> None:
    """Delete sessions past their absolute expiry before ``before``."""
    await conn.execute(ui_sessions.delete().where(ui_sessions.c.expires_at < before))


# --- OIDC sign-ins in progress -----------------------------------------------------------------


@dataclass(frozen=True)
class FlowRow:
    """An OIDC sign-in in progress."""

    nonce: str
    code_verifier: str
    return_to: str
    expires_at: float


async def insert_flow(conn: AsyncConnection, **values: Any) -> None:
    """Insert a sign-in in progress; expired ones are purged first."""
    await conn.execute(login_flows.delete().where(login_flows.c.expires_at < time.time()))
    await conn.execute(login_flows.insert().values(**values))


async def take_flow(conn: AsyncConnection, state_hash: str, binding_hash: str) -> FlowRow | None:
    """The sign-in with this state and browser binding, deleted as it is read (single use)."""
    where = (login_flows.c.state_hash == state_hash, login_flows.c.binding_hash == binding_hash)
    row = (await conn.execute(sa.select(login_flows).where(*where))).first()
    if row is None:
        return None
    res = await conn.execute(login_flows.delete().where(*where))
    if res.rowcount != 1:  # another request took it first
        return None
    return FlowRow(row.nonce, row.code_verifier, row.return_to, row.expires_at)


# --- the session key ---------------------------------------------------------------------------


async def session_key(conn: AsyncConnection, name: str, generated: str) -> str:
    """The stored key ``name``, stored as ``generated`` when there is none yet."""
    q = sa.select(session_keys.c.secret).where(session_keys.c.name == name)
    found = (await conn.execute(q)).scalar()
    if found is not None:
        return str(found)
    await conn.execute(
        session_keys.insert().values(name=name, secret=generated, created_at=time.time())
    )
    return generated

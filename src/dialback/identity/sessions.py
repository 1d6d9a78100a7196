"""Server-side sessions of the Callback UI, the key that signs their cookies, and OIDC
sign-ins in progress.

A cookie holds a random session id (32 bytes) and its HMAC-SHA256 under the session key; the
store holds only the SHA-256 of the id. A session ends on logout, after
``DIALBACK_SESSION_IDLE_MINUTES`` without a request, or ``DIALBACK_SESSION_MAX_HOURS`` after
sign-in, whichever comes first: all enforced here, on the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.identity import repository as repo
from dialback.identity.oidc import AuthorizationRequest
from dialback.identity.roles import Principal
from dialback.identity.users import UserAdmin
from dialback.settings import Settings

SESSION_COOKIE = "dialback_session"
LOGIN_CSRF_COOKIE = "dialback_login_csrf"
FLOW_COOKIE = "dialback_login_flow"
FLOW_SECONDS = 600
"""How long an OIDC sign-in may take from the redirect to the provider to the callback."""
TOUCH_SECONDS = 60.0
"""Activity is written at most this often per session."""
_KEY_NAME = "cookie-hmac"
_ID_BYTES = 32
_USER_AGENT_MAX = 200


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sha256_hex(text: str) -> str:
    """SHA-256 hex digest of ``text``."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Session:
    """A live session and the principal acting through it."""

    id_hash: str
    principal: Principal
    csrf_token: str
    created_at: float
    last_seen_at: float
    expires_at: float
    idle_seconds: float

    @property
    def ends_at(self) -> float:
        """When it ends unless used again: the idle timeout or the absolute expiry."""
        return min(self.expires_at, self.last_seen_at + self.idle_seconds)


@dataclass(frozen=True)
class LoginFlow:
    """An OIDC sign-in taken back at the callback."""

    nonce: str
    code_verifier: str
    return_to: str


class SessionManager:
    """Creates, resolves and ends UI sessions; signs and checks cookie values."""

    def __init__(self, engine: AsyncEngine, settings: Settings, users: UserAdmin) -> None:
        self.engine = engine
        self.users = users
        self.idle_seconds = settings.session_idle_minutes * 60
        self.max_seconds = settings.session_max_hours * 3600
        self.touch_seconds = min(TOUCH_SECONDS, self.idle_seconds / 10)
        self._configured_key = (
            settings.session_secret.get_secret_value().encode()
            if settings.session_secret is not None
            else None
        )
        self._key: bytes | None = self._configured_key

    async def key(self) -> bytes:
        """The signing key: DIALBACK_SESSION_SECRET, else the one generated once in the store."""
        if self._key is None:
            generated = secrets.token_hex(32)
            try:
                async with self.engine.begin() as conn:
                    stored = await repo.session_key(conn, _KEY_NAME, generated)
            except IntegrityError:  # another replica stored its key first
                async with self.engine.begin() as conn:
                    stored = await repo.session_key(conn, _KEY_NAME, generated)
            self._key = bytes.fromhex(stored)
        return self._key

    async def sign(self, value: str) -> str:
        """``value`` with its signature, for a cookie."""
        mac = hmac.new(await self.key(), value.encode(), hashlib.sha256).digest()
        return f"{value}.{_b64(mac)}"

    async def unsign(self, signed: str | None) -> str | None:
        """The value of a signed cookie, or None when it is missing, malformed or forged."""
        if not signed or len(signed) > 200 or "." not in signed:
            return None
        value, _, given = signed.rpartition(".")
        mac = hmac.new(await self.key(), value.encode(), hashlib.sha256).digest()
        return value if hmac.compare_digest(_b64(mac), given) else None

    async def create(
        self, principal: Principal, address: str, user_agent: str
    ) -> tuple[str, Session]:
        """A new session for ``principal``: the signed cookie value and the session."""
        sid = _b64(secrets.token_bytes(_ID_BYTES))
        now = time.time()
        session = Session(
            sha256_hex(sid),
            principal,
            _b64(secrets.token_bytes(32)),
            now,
            now,
            now + self.max_seconds,
            self.idle_seconds,
        )
        async with self.engine.begin() as conn:
            await repo.purge_sessions(conn, now - 86400)
            await repo.insert_session(
                conn,
                id_hash=session.id_hash,
                principal_kind=principal.kind,
                principal_name=principal.name[:200],
                principal_subject=principal.subject[:255],
                roles=repo.roles_json(principal.roles),
                tenants=repo.tenants_json(principal.tenants),
                csrf_token=session.csrf_token,
                created_at=now,
                last_seen_at=now,
                expires_at=session.expires_at,
                address=address[:64],
                user_agent=user_agent[:_USER_AGENT_MAX],
            )
        return await self.sign(sid), session

    async def resolve(self, cookie: str | None) -> Session | None:
        """The live session of a cookie, or None (ended, idle too long, past its lifetime,
        or its local user gone or disabled: each ends it in the store)."""
        sid = await self.unsign(cookie)
        if sid is None:
            return None
        id_hash = sha256_hex(sid)
        async with self.engine.connect() as conn:
            row = await repo.get_session(conn, id_hash)
        if row is None or row.ended_at is not None:
            return None
        now = time.time()
        if now >= row.expires_at:
            await self._end(id_hash, "expired")
            return None
        if now - row.last_seen_at >= self.idle_seconds:
            await self._end(id_hash, "idle")
            return None
        principal: Principal | None = Principal(
            row.principal_kind, row.principal_name, row.roles, row.tenants, row.principal_subject
        )
        if row.principal_kind == "local":
            # Roles and scope as they are now: a disabled or demoted user loses access at once.
            principal = await self.users.current_principal(row.principal_name)
            if principal is None:
                await self._end(id_hash, "user_disabled")
                return None
        assert principal is not None
        last_seen = row.last_seen_at
        if now - last_seen >= self.touch_seconds:
            async with self.engine.begin() as conn:
                await repo.touch_session(conn, id_hash, now)
            last_seen = now
        return Session(
            id_hash,
            principal,
            row.csrf_token,
            row.created_at,
            last_seen,
            row.expires_at,
            self.idle_seconds,
        )

    async def end(self, session: Session, reason: str) -> bool:
        """End a session in the store (its cookie is refused from now on)."""
        return await self._end(session.id_hash, reason)

    async def _end(self, id_hash: str, reason: str) -> bool:
        async with self.engine.begin() as conn:
            return await repo.end_session(conn, id_hash, reason)

    async def start_flow(self, auth: AuthorizationRequest, return_to: str) -> str:
        """Keep an OIDC sign-in until its callback; the signed browser-binding cookie value."""
        binding = _b64(secrets.token_bytes(32))
        now = time.time()
        async with self.engine.begin() as conn:
            await repo.insert_flow(
                conn,
                state_hash=sha256_hex(auth.state),
                nonce=auth.nonce,
                code_verifier=auth.code_verifier,
                return_to=return_to,
                binding_hash=sha256_hex(binding),
                created_at=now,
                expires_at=now + FLOW_SECONDS,
            )
        return await self.sign(binding)

    async def take_flow(self, state: str, binding_cookie: str | None) -> LoginFlow | None:
        """The sign-in this browser started with ``state`` (once), or None: unknown, taken
        already, started in another browser or expired."""
        binding = await self.unsign(binding_cookie)
        if binding is None or not state or len(state) > 500:
            return None
        async with self.engine.begin() as conn:
            row = await repo.take_flow(conn, sha256_hex(state), sha256_hex(binding))
        if row is None or row.expires_at <= time.time():
            return None
        return LoginFlow(row.nonce, row.code_verifier, row.return_to)

"""The sign-in use cases of the Callback UI: a local password or an OIDC round trip, each
ending in a new session (never the browser's previous one), and logout; all audited and
counted against the per-address limit of failed sign-ins."""

from __future__ import annotations

from dataclasses import dataclass

from dialback.audit.service import AuditLog
from dialback.identity.bruteforce import AttemptLimiter
from dialback.identity.oidc import OidcClient, OidcError
from dialback.identity.roles import Principal
from dialback.identity.sessions import Session, SessionManager
from dialback.identity.users import BadCredentials, UserAdmin

LOGIN = "login"


class SignInFailed(Exception):
    """A sign-in that did not happen; ``reason`` is for the audit log."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class FlowExpired(SignInFailed):
    """The OIDC callback names no sign-in this browser started (or it was used or too old)."""


class ProviderRefused(SignInFailed):
    """The provider answered the callback with an error instead of a code."""


class NoRole(SignInFailed):
    """The identity is verified but none of its groups grants a dialback role."""


@dataclass(frozen=True)
class NewSession:
    """A session just started: the signed cookie value, the session and where to go next."""

    cookie: str
    session: Session
    return_to: str


@dataclass(frozen=True)
class Client:
    """Who is signing in: the client address and the browser's previous session, if any."""

    address: str
    user_agent: str
    previous: Session | None = None


def typed_actor(username: str) -> str:
    """How the audit log names a failed local sign-in: the name as typed, printable, ≤ 64."""
    return "local:" + "".join(ch for ch in username if ch.isprintable())[:64]


class SignIn:
    """Password and OIDC sign-in, and logout."""

    def __init__(self, users: UserAdmin, sessions: SessionManager, audit: AuditLog) -> None:
        self.users = users
        self.sessions = sessions
        self.audit = audit

    async def with_password(
        self,
        username: str,
        password: str,
        client: Client,
        attempts: AttemptLimiter,
        return_to: str,
    ) -> NewSession:
        """A new session for a correct local user name and password; BadCredentials (counted
        and audited) otherwise, TooManyAttempts when the address is over its limit."""
        await attempts.check(LOGIN, client.address)
        try:
            principal = await self.users.authenticate(username, password)
        except BadCredentials as exc:
            await attempts.failed(LOGIN, client.address, exc.reason)
            await self.audit.record(
                typed_actor(username),
                "session.login_failed",
                object_type="user",
                object_id=username.strip().lower()[:64],
                outcome="failed",
                address=client.address,
                detail={"method": "password", "reason": exc.reason},
            )
            raise
        return await self._start(principal, client, return_to, "password")

    async def start_oidc(
        self,
        oidc: OidcClient,
        redirect_uri: str,
        return_to: str,
        client: Client,
        attempts: AttemptLimiter,
    ) -> tuple[str, str]:
        """Where to send the browser and the signed cookie binding the flow to it; OidcError
        when the provider cannot be asked."""
        await attempts.check(LOGIN, client.address)
        auth = await oidc.authorization_request(redirect_uri)
        return auth.url, await self.sessions.start_flow(auth, return_to)

    async def finish_oidc(
        self,
        oidc: OidcClient,
        *,
        state: str,
        binding: str | None,
        code: str,
        error: str,
        error_description: str,
        redirect_uri: str,
        client: Client,
        attempts: AttemptLimiter,
    ) -> NewSession:
        """A new session for the identity the provider vouches for; SignInFailed or OidcError
        (each counted and audited) otherwise."""
        await attempts.check(LOGIN, client.address)
        flow = await self.sessions.take_flow(state, binding)
        try:
            if error:
                text = "".join(ch for ch in f"{error}: {error_description}" if ch.isprintable())
                raise ProviderRefused(
                    f"provider error {error[:64]}",
                    f"The provider refused the sign-in ({text[:300]}).",
                )
            if flow is None or not code:
                raise FlowExpired(
                    "unknown or expired state",
                    "This sign-in was not started in this browser, was used already or took "
                    "too long. Start again from the sign-in page.",
                )
            identity = await oidc.complete(
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=flow.code_verifier,
                nonce=flow.nonce,
            )
            principal = identity.principal()
            if not principal.roles:
                raise NoRole(
                    "no role",
                    f"{principal.name} signed in, but none of your groups grants a dialback "
                    "role. Ask an administrator.",
                )
        except (SignInFailed, OidcError) as exc:
            reason = exc.reason if isinstance(exc, SignInFailed) else type(exc).__name__
            await attempts.failed(LOGIN, client.address, reason)
            await self.audit.record(
                "oidc:?",
                "session.login_failed",
                object_type="user",
                outcome="failed",
                address=client.address,
                detail={"method": "oidc", "reason": reason[:200]},
            )
            raise
        return await self._start(principal, client, flow.return_to, "oidc")

    async def logout(self, session: Session, address: str) -> None:
        """End the session in the store."""
        await self.sessions.end(session, "logout")
        await self.audit.record(
            session.principal,
            "session.logout",
            object_type="user",
            object_id=session.principal.name,
            address=address,
        )

    async def _start(
        self, principal: Principal, client: Client, return_to: str, method: str
    ) -> NewSession:
        # A new id at every sign-in (no fixation): the browser's earlier session ends.
        if client.previous is not None:
            await self.sessions.end(client.previous, "replaced")
        cookie, session = await self.sessions.create(principal, client.address, client.user_agent)
        await self.audit.record(
            principal,
            "session.login",
            object_type="user",
            object_id=principal.name,
            address=client.address,
            detail={"method": method},
        )
        return NewSession(cookie, session, return_to)

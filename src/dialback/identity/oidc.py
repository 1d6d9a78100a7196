"""The OIDC relying party (interface only here; the implementation lands with its branch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dialback.identity.roles import Principal, Role


class OidcError(Exception):
    """A sign-in or token problem; the message is safe to show an operator."""


class OidcUnavailable(OidcError):
    """The provider is unreachable or answered an error."""


class OidcRejected(OidcError):
    """A token, code or identity was refused."""


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and what to keep until it comes back."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class OidcIdentity:
    """A verified identity with its dialback roles and tenant scope."""

    subject: str
    name: str
    email: str
    roles: frozenset[Role]
    tenants: frozenset[str] | None
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

    def principal(self) -> Principal:
        """The principal acting for this identity."""
        return Principal("oidc", self.name, self.roles, self.tenants, self.subject)


class OidcClient:
    """Interface of the relying party."""

    display_name: str = "Single sign-on"

    async def authorization_request(self, redirect_uri: str) -> AuthorizationRequest:
        """A new authorization request (PKCE S256, state, nonce)."""
        raise NotImplementedError

    async def complete(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcIdentity:
        """Exchange ``code`` and verify the ID token."""
        raise NotImplementedError

    async def verify_access_token(self, token: str) -> OidcIdentity:
        """Verify a bearer JWT access token."""
        raise NotImplementedError

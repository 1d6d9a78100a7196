"""Who calls the admin API: an admin token, or an OIDC access token verified against the
provider's keys; refused credentials count against the client address (brute-force limits)."""

from __future__ import annotations

import logging

from dialback.identity.admin_tokens import AdminTokens
from dialback.identity.bruteforce import AttemptLimiter
from dialback.identity.oidc import OidcClient, OidcRejected, OidcUnavailable
from dialback.identity.roles import Principal
from dialback.kit.errors import ApiError, Unauthorized

log = logging.getLogger("dialback.auth")
KIND = "admin_token"


def _looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and not credential.startswith("sha256:")


class AdminAuthenticator:
    """Turns an admin API bearer credential into a Principal, or refuses it (401; 429 from an
    address over its limit; 503 when the OIDC provider cannot be asked)."""

    def __init__(
        self, tokens: AdminTokens, attempts: AttemptLimiter, oidc: OidcClient | None = None
    ) -> None:
        self.tokens = tokens
        self.attempts = attempts
        self.oidc = oidc

    async def admin_caller(self, credential: str | None, address: str) -> Principal:
        """The principal of ``credential`` (an admin token or a JWT access token)."""
        if not self.tokens and self.oidc is None:
            raise ApiError(
                401,
                "the admin API is disabled: configure DIALBACK_ADMIN_TOKENS or an OIDC provider",
            )
        if self.attempts.blocking:
            await self.attempts.check(KIND, address)
        if not credential:
            raise Unauthorized("missing Authorization: Bearer <admin token or access token>")
        principal = self.tokens.match(credential)
        if principal is not None:
            return principal
        if self.oidc is not None and _looks_like_jwt(credential):
            try:
                return (await self.oidc.verify_access_token(credential)).principal()
            except OidcUnavailable as exc:
                raise ApiError(503, f"the OIDC provider cannot verify tokens now: {exc}") from exc
            except OidcRejected as exc:
                await self.attempts.failed(KIND, address, "access token refused")
                raise Unauthorized(f"access token refused: {exc}") from exc
        await self.attempts.failed(KIND, address, "invalid admin token")
        raise Unauthorized("invalid admin token")

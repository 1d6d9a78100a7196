"""Who calls the admin API: an admin token, or an OIDC access token verified against the
provider's keys."""

from __future__ import annotations

import logging
from typing import Any

from dialback.identity.admin_tokens import AdminTokens
from dialback.identity.roles import Principal
from dialback.kit.errors import ApiError, Unauthorized

log = logging.getLogger("dialback.auth")


class AdminAuthenticator:
    """Turns an admin API bearer credential into a Principal, or refuses it (401)."""

    def __init__(self, tokens: AdminTokens, oidc: Any = None) -> None:
        self.tokens = tokens
        self.oidc = oidc

    async def admin_caller(self, credential: str | None, address: str) -> Principal:
        """The principal of ``credential`` (an admin token or a JWT access token); 401 when it
        is missing or not valid."""
        if not self.tokens and self.oidc is None:
            raise ApiError(
                401,
                "the admin API is disabled: configure DIALBACK_ADMIN_TOKENS or an OIDC provider",
            )
        if not credential:
            raise Unauthorized("missing Authorization: Bearer <admin token or access token>")
        principal = self.tokens.match(credential)
        if principal is not None:
            return principal
        log.warning("invalid admin credential from %s", address)
        raise Unauthorized("invalid admin token")

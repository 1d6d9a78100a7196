"""Per-address limits on failed authentication (interface only here; the implementation lands
with its branch)."""

from __future__ import annotations

from dialback.kit.errors import ApiError

KINDS = ("api_key", "admin_token", "login")


class TooManyAttempts(ApiError):
    """429: too many failed authentication attempts from this address."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            f"too many failed authentication attempts from this address; retry in {retry_after} s",
        )
        self.retry_after = retry_after


class AttemptLimiter:
    """Interface of the limiter."""

    async def check(self, kind: str, address: str) -> None:
        """Raise TooManyAttempts when ``address`` is over its limit for ``kind``."""

    async def failed(self, kind: str, address: str, reason: str = "") -> None:
        """Count one failure."""

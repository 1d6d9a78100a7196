"""Brute-force limits: authentication failures counted per client address and kind, and an
address over its limit refused (429 with ``Retry-After``) until its window ends.

Windows are fixed and aligned on the epoch (``now // window``): every replica computes the same
window, its end and so the same ``Retry-After`` without asking anyone, and a window is one
counter (one key, one ``incr_many``). A sliding window would bound bursts across a boundary
(up to twice the limit in a short time there), but the limits are against guessing, where
the number of guesses per window on average is what counts, and it would cost a second key per
failure. Counts live in ``Counters``: dialback's own Redis (shared by every replica, each
replica counting alone in its memory while that Redis is down), or this process's memory.

The hot path: successful authentications never touch the counters. A replica remembers in its
memory which addresses it found over a limit, until their window ends; ``check`` reads only
that (nothing at all while no address is blocked), so valid traffic pays no Redis round trip.
A failure is counted in the shared counter; the failure that takes an address over its limit
blocks it on that replica. Another replica learns of the block at its own first failure from
that address (the shared count is over the limit there too), so each replica may evaluate at
most one more attempt from a blocked address: at most ``limit + replicas - 1`` guesses per
window, whichever replica they reach (docs/security.md "Brute-force limits").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from dialback.kit.errors import ApiError
from dialback.observability.events import Events
from dialback.settings import Settings
from dialback.throttle.counters import Counters

log = logging.getLogger("dialback.identity")

KINDS = ("api_key", "admin_token", "login")
"""What failed: a public API key, an admin bearer token, an operator's sign-in."""

_MAX_ADDRESS = 64
TOO_MANY_MESSAGE = "too many failed authentication attempts from this address"


class TooManyAttempts(ApiError):
    """429: too many failed authentications from this address; ``retry_after`` seconds left."""

    def __init__(self, retry_after: int) -> None:
        message = f"{TOO_MANY_MESSAGE}; retry in {retry_after} s"
        super().__init__(429, message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


def _retry_after(until: float, now: float) -> int:
    return max(1, math.ceil(until - now))


class AttemptLimiter:
    """Per-address limits on authentication failures, by kind (``KINDS``)."""

    # Addresses remembered as blocked; past this many, expired ones and then the oldest go.
    MAX_BLOCKED = 100_000

    def __init__(
        self,
        counters: Counters,
        events: Events,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.counters = counters
        self.events = events
        self.window = settings.auth_failure_window_seconds
        self.limits = {
            "api_key": settings.auth_failure_limit,
            "admin_token": settings.auth_failure_limit,
            "login": settings.login_failure_limit,
        }
        self._clock = clock
        self._blocked: dict[tuple[str, str], float] = {}  # (kind, address) -> window end
        self._last_end = 0.0  # the latest window end in _blocked: all are over after it

    @property
    def blocking(self) -> bool:
        """Whether this replica holds any block now (False: ``check`` has nothing to do)."""
        if self._blocked and self._clock() >= self._last_end:
            self._blocked.clear()
        return bool(self._blocked)

    async def check(self, kind: str, address: str) -> None:
        """Raise TooManyAttempts when ``address`` is over its limit for ``kind``."""
        if not self.blocking:
            return
        key = (kind, address[:_MAX_ADDRESS])
        until = self._blocked.get(key)
        if until is None:
            return
        now = self._clock()
        if until <= now:
            self._blocked.pop(key, None)
            return
        self.events.auth_rate_limited(kind)
        log.debug(
            "refused %s authentication: this address is over its limit",
            kind,
            extra={"clientAddress": key[1], "authKind": kind},
        )
        raise TooManyAttempts(_retry_after(until, now))

    async def failed(self, kind: str, address: str, reason: str = "") -> None:
        """Count one failure (logs a warning with the address and kind, never the secret);
        raise TooManyAttempts when this failure takes ``address`` over its limit."""
        limit = self.limits[kind]
        address = address[:_MAX_ADDRESS]
        now = self._clock()
        index = int(now // self.window)
        until = float((index + 1) * self.window)
        self.events.auth_failed(kind)
        ttl = int(until - now) + 1
        (count,) = await self.counters.incr_many([(f"auth:{kind}:{address}:{index}", ttl)])
        because = f" ({reason})" if reason else ""
        # The address goes in its own field: in the message the log's phone masking would
        # mangle it (an IPv4 address is a run of digits and dots).
        where = {"clientAddress": address, "authKind": kind}
        if count <= limit:
            log.warning(
                "failed %s authentication%s: %d of %d allowed from this address in this "
                "%d s window",
                kind,
                because,
                count,
                limit,
                self.window,
                extra=where,
            )
            return
        retry_after = _retry_after(until, now)
        log.warning(
            "failed %s authentication%s: this address is over its limit (%d in this %d s "
            "window); every %s attempt from it is refused for %d s",
            kind,
            because,
            count,
            self.window,
            kind,
            retry_after,
            extra=where,
        )
        self._block((kind, address), until, now)
        self.events.auth_rate_limited(kind)
        raise TooManyAttempts(retry_after)

    def _block(self, key: tuple[str, str], until: float, now: float) -> None:
        blocked = self._blocked
        if key not in blocked and len(blocked) >= self.MAX_BLOCKED:
            for old in [k for k, end in blocked.items() if end <= now]:
                del blocked[old]
            while len(blocked) >= self.MAX_BLOCKED:
                del blocked[next(iter(blocked))]
        blocked[key] = until
        self._last_end = max(self._last_end, until)

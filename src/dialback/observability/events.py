"""Business and alarm events raised by the service code.

One object receives every event the domain code reports, so the domain code never imports a
metrics library; the metric catalogue subscribes here.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("dialback.events")


class Events:
    """Receives domain events; counts them for tests and feeds metrics when wired."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def callback_created(self, tenant: Any, service: str, immediate: bool) -> None:
        """A callback was committed."""
        self._count("callback_created")

    def callin_created(self, tenant: Any) -> None:
        """A Click-To-Call-In request was committed."""
        self._count("callin_created")

    def tenant_throttled(self, tenant: Any) -> None:
        """A tenant hit its callbacks-per-window limit (GES CB_TTL_LIMIT_REACHED)."""
        self._count("tenant_throttled")
        log.warning("tenant %s reached its callback limit", tenant.name)

    def number_throttled(self, tenant: Any) -> None:
        """A per-number limit refused a booking (GES CB_ENQUEUE_LIMIT_REACHED)."""
        self._count("number_throttled")

    def submit_failed(self, n: int) -> None:
        """Publishing to the routing stream failed (GES CB_SUBMIT_FAILED)."""
        self._count("submit_failed", n)

    def dispatched(self, tenant_id: str, lateness: float) -> None:
        """A callback reached the routing stream ``lateness`` seconds after it was due."""
        self._count("dispatched")

    def outcome(self, tenant_id: str, reason: str) -> None:
        """An attempt ended (answered, no-answer, busy, failed, cancelled, retry)."""
        self._count(f"outcome:{reason}")

    def monitor_cycle(self, seconds: float) -> None:
        """One monitor dispatch cycle finished."""
        self._count("monitor_cycle")

    def uncaught_exception(self, where: str) -> None:
        """An unexpected exception was caught at a top-level boundary."""
        self._count("uncaught_exception")

    def cancel_notify_failed(self) -> None:
        """A committed cancel could not be announced to the routing engine."""
        self._count("cancel_notify_failed")

    def oversize_body(self) -> None:
        """A request body exceeded the limit (GES INVALID_CONTENT_LENGTH)."""
        self._count("oversize_body")

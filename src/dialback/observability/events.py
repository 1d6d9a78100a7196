"""Business and alarm events raised by the service code.

Domain code reports what happened here and never touches a metric directly; this module maps
each event onto the catalogue's metrics (and keeps plain counts the tests can read).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dialback.observability.metrics import Metrics

log = logging.getLogger("dialback.events")


class Events:
    """Receives domain events and updates the metrics."""

    def __init__(self, metrics: Metrics | None = None, lagging_threshold: float = 5.0) -> None:
        self.metrics = metrics or Metrics()
        self.lagging_threshold = lagging_threshold
        self.counts: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def callback_created(self, tenant: Any, service: str, immediate: bool) -> None:
        """A callback was committed."""
        self._count("callback_created")
        self.metrics.callbacks_created.inc((tenant.name, service))

    def callin_created(self, tenant: Any) -> None:
        """A Click-To-Call-In request was committed."""
        self._count("callin_created")
        self.metrics.callin_created.inc((tenant.name,))

    def tenant_throttled(self, tenant: Any) -> None:
        """A tenant hit its callbacks-per-window limit (GES CB_TTL_LIMIT_REACHED)."""
        self._count("tenant_throttled")
        self.metrics.alarm("CB_TTL_LIMIT_REACHED", tenant.name)

    def number_throttled(self, tenant: Any) -> None:
        """A per-number limit refused a booking (GES CB_ENQUEUE_LIMIT_REACHED)."""
        self._count("number_throttled")
        self.metrics.alarm("CB_ENQUEUE_LIMIT_REACHED", tenant.name)

    def submit_failed(self, n: int) -> None:
        """Publishing to the routing stream failed (GES CB_SUBMIT_FAILED)."""
        self._count("submit_failed", n)
        self.metrics.alarm("CB_SUBMIT_FAILED", amount=n)

    def dispatched(self, tenant_id: str, lateness: float) -> None:
        """A callback reached the routing stream ``lateness`` seconds after it was due."""
        self._count("dispatched")
        lateness = max(0.0, lateness)
        self.metrics.lateness.observe((), lateness)
        if lateness > self.lagging_threshold:
            self.metrics.alarm("MONITOR_LAGGING_BEHIND")

    def outcome(self, tenant_id: str, reason: str) -> None:
        """An attempt ended (answered, no-answer, busy, failed, cancelled, retry)."""
        self._count(f"outcome:{reason}")
        self.metrics.outcomes.inc((reason,))

    def monitor_cycle(self, seconds: float) -> None:
        """One monitor dispatch cycle finished."""
        self._count("monitor_cycle")
        self.metrics.cycle.observe((), seconds)
        self.metrics.f["ges_monitor_last_run_timestamp_seconds"].set((), time.time())

    def uncaught_exception(self, where: str) -> None:
        """An unexpected exception was caught at a top-level boundary."""
        self._count("uncaught_exception")
        self.metrics.alarm("UNCAUGHT_EXCEPTION")

    def cancel_notify_failed(self) -> None:
        """A committed cancel could not be announced to the routing engine."""
        self._count("cancel_notify_failed")
        self.metrics.alarm("CB_SUBMIT_FAILED")

    def oversize_body(self) -> None:
        """A request body exceeded the limit or had a bad length (GES INVALID_CONTENT_LENGTH)."""
        self._count("oversize_body")
        self.metrics.alarm("INVALID_CONTENT_LENGTH")

    def provisioning_failed(self) -> None:
        """Creating routing objects (stream, consumer groups) failed (RBAC_CREATE_VQ_PROXY_ERROR)."""
        self._count("provisioning_failed")
        self.metrics.alarm("RBAC_CREATE_VQ_PROXY_ERROR")

    def tenant_known(self, tenant_name: str) -> None:
        """A tenant exists: create its labelled series at 0."""
        self.metrics.tenant_known(tenant_name)

    def service_known(self, tenant_name: str, service: str) -> None:
        """A service exists: create its labelled series at 0."""
        self.metrics.service_known(tenant_name, service)

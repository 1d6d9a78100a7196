"""What happened, reported by the service code and mapped onto the catalogue's metrics.

The rule: outside ``metrics.py`` (its defaults and its scrape-time process collector), this
module is the only writer of metrics. Domain code, the monitor, the health checker and the
loop-lag monitor call a method here that says what happened (``events.dns_failure()``) and
never touch a family. The one exception is ``http_metrics.RequestObservability``: it counts
every answered request in batches on the request path, with label tuples cached per route,
and a call through this module per request would cost that path without telling more.
Reading families (tests, the ``/metrics`` render) is not writing and needs no method here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from dialback.observability.metrics import MONITOR_TYPES, Metrics

log = logging.getLogger("dialback.events")


class Events:
    """Receives domain events and updates the metrics."""

    # Callback attempts remembered as failing to publish; past this many (a long outage with a
    # huge backlog) the memory is dropped and a later retry may count again.
    MAX_FAILING_SUBMITS = 10_000

    def __init__(self, metrics: Metrics | None = None, lagging_threshold: float = 5.0) -> None:
        self.metrics = metrics or Metrics()
        self.lagging_threshold = lagging_threshold
        self._failing_submits: set[Hashable] = set()

    def callback_created(self, tenant: Any, service: str, immediate: bool) -> None:
        """A callback was committed."""
        self.metrics.ges_callbacks_created.inc((tenant.name, service))

    def idempotent_replay(self, tenant: Any) -> None:
        """A create was answered from the booking its Idempotency-Key made earlier."""
        self.metrics.ges_callbacks_create_replayed_total.inc((tenant.name,))

    def callin_created(self, tenant: Any) -> None:
        """A Click-To-Call-In request was committed."""
        self.metrics.ges_callin_created.inc((tenant.name,))

    def tenant_throttled(self, tenant: Any) -> None:
        """A tenant hit its callbacks (or call-ins) per window limit (GES CB_TTL_LIMIT_REACHED)."""
        self.metrics.CB_TTL_LIMIT_REACHED.inc((tenant.name,))

    def number_throttled(self, tenant: Any) -> None:
        """A per-number limit refused a booking (GES CB_ENQUEUE_LIMIT_REACHED)."""
        self.metrics.CB_ENQUEUE_LIMIT_REACHED.inc((tenant.name,))

    def submit_failed(self, attempts: Iterable[Hashable]) -> None:
        """Publishing these callback attempts failed (GES CB_SUBMIT_FAILED): each counts once,
        however often its publish is retried, until it is published."""
        failing = self._failing_submits
        new = [a for a in attempts if a not in failing]
        if len(failing) + len(new) > self.MAX_FAILING_SUBMITS:
            failing.clear()
        failing.update(new)
        if new:
            self.metrics.CB_SUBMIT_FAILED.inc((), len(new))

    def submitted(self, attempts: Iterable[Hashable]) -> None:
        """These callback attempts reached the routing stream (a failure before counts again)."""
        if self._failing_submits:
            self._failing_submits.difference_update(attempts)

    def dispatched(self, tenant_id: str, lateness: float) -> None:
        """A callback reached the routing stream ``lateness`` seconds after it was due."""
        lateness = max(0.0, lateness)
        self.metrics.ges_dispatch_lateness_seconds.observe((), lateness)
        if lateness > self.lagging_threshold:
            self.metrics.MONITOR_LAGGING_BEHIND.inc()

    def outcome(self, tenant_id: str, reason: str) -> None:
        """An attempt ended (answered, no-answer, busy, failed, cancelled, retry)."""
        self.metrics.ges_dispatch_outcomes_total.inc((reason,))

    def monitor_cycle(self, seconds: float, stalled: float = 0.0) -> None:
        """One monitor dispatch cycle finished; ``stalled``: how long every cycle has failed."""
        self.metrics.ges_monitor_cycle_duration_seconds.observe((), seconds)
        self.metrics.ges_monitor_last_run_timestamp_seconds.set((), time.time())
        self.metrics.ges_monitor_dispatch_stalled_seconds.set((), stalled)

    def callback_parked(self, tenant_id: str) -> None:
        """The monitor set a due callback aside whose row cannot be dispatched (CB_PARKED)."""
        self.metrics.CB_PARKED.inc()

    def parked_count(self, open_parked: int) -> None:
        """How many parked callbacks are still open."""
        self.metrics.ges_parked_callbacks.set((), open_parked)

    def monitor_stats(
        self, counts: Mapping[str, int] | None, backlog: int, oldest_age: float
    ) -> None:
        """The monitor counted open callbacks by state (None: not this time) and the due backlog."""
        m = self.metrics
        size = m.ges_monitor_size
        if counts is not None:
            for kind in MONITOR_TYPES:
                if kind != "due":
                    size.set((kind,), counts.get(kind.upper(), 0))
        size.set(("due",), backlog)
        m.ges_due_backlog.set((), backlog)
        m.ges_due_oldest_age_seconds.set((), oldest_age)

    def uncaught_exception(self, where: str) -> None:
        """An unexpected exception was caught at a top-level boundary."""
        self.metrics.UNCAUGHT_EXCEPTION.inc()

    def cancel_notify_failed(self) -> None:
        """A committed cancel could not be announced to the routing engine (CB_SUBMIT_FAILED:
        one per cancel)."""
        self.metrics.CB_SUBMIT_FAILED.inc()

    def http_edge_refused(self, listener: str, reason: str) -> None:
        """The HTTP edge closed a connection of ``listener`` for ``reason`` (EDGE_REFUSALS)."""
        self.metrics.ges_http_edge_refusals_total.inc((listener, reason))

    def oversize_body(self) -> None:
        """A request body exceeded the limit or had a bad length (GES INVALID_CONTENT_LENGTH)."""
        self.metrics.INVALID_CONTENT_LENGTH.inc()

    def provisioning_failed(self) -> None:
        """An attempt to create the routing objects (stream, consumer groups) failed
        (RBAC_CREATE_VQ_PROXY_ERROR: one per attempt; the monitor backs its retries off)."""
        self.metrics.RBAC_CREATE_VQ_PROXY_ERROR.inc()

    def logging_failed(self) -> None:
        """A log line could not be written (LOGGING_FAILURE)."""
        self.metrics.LOGGING_FAILURE.inc()

    def dependency_checked(
        self, name: str, gauge: str | None, up: bool, at: float, duration: float
    ) -> None:
        """A dependency check finished at epoch ``at`` after ``duration`` seconds."""
        m = self.metrics
        if gauge:
            m.health_gauge(gauge).set((), 0 if up else 1)
        m.ges_dependency_last_check_timestamp_seconds.set((name,), at)
        m.ges_dependency_check_duration_seconds.set((name,), duration)

    def ges_health(self, down: int) -> None:
        """``down`` of the dependencies GES_HEALTH counts are down."""
        self.metrics.GES_HEALTH.set((), down)

    def dns_failure(self) -> None:
        """A dependency's host name could not be resolved (GES_DNS_FAILURE, as GES's docs name
        it, and DNS_FAILURE, as GES's rule queries it: the same count)."""
        self.metrics.GES_DNS_FAILURE.inc()
        self.metrics.DNS_FAILURE.inc()

    def gws_server_error(self) -> None:
        """A GWS-style HTTP dependency failed or answered 5xx (GWS_SERVER_ERROR)."""
        self.metrics.GWS_SERVER_ERROR.inc()

    def gws_credentials_rejected(self) -> None:
        """A GWS-style HTTP dependency answered 401/403 (GWS_INCORRECT_CLIENT_CREDENTIALS)."""
        self.metrics.GWS_INCORRECT_CLIENT_CREDENTIALS.inc()

    def loop_lag(self, lag: float) -> None:
        """The event loop ran a timer ``lag`` seconds late."""
        m = self.metrics
        m.ges_nodejs_eventloop_lag_seconds.set((), lag)
        m.application_ccecp_nodejs_eventloop_lag_seconds.set((), lag)
        m.ges_eventloop_lag_seconds.observe((), lag)

    def tenant_known(self, tenant_name: str) -> None:
        """A tenant exists: create its labelled series at 0."""
        self.metrics.tenant_known(tenant_name)

    def service_known(self, tenant_name: str, service: str) -> None:
        """A service exists: create its labelled series at 0."""
        self.metrics.service_known(tenant_name, service)

    def deadline_acted(self, state: str, action: str, n: int = 1) -> None:
        """``n`` routed attempts in ``state`` outlived its deadline and were ``action``
        (republished, retried, completed)."""
        self.metrics.ges_deadline_actions_total.inc((state.lower(), action), n)

    def routing_stream_lost(self) -> None:
        """The routing Redis had lost the streams or groups dialback provisioned (restarted
        empty, flushed); they were provisioned again."""
        self.metrics.ges_routing_stream_losses_total.inc()

    def retention_purged(self, kind: str, count: int) -> None:
        """Retention removed ``count`` items of ``kind`` (catalogue RETENTION_KINDS)."""
        if count:
            self.metrics.ges_retention_purged_total.inc((kind,), count)

    def retention_swept(self) -> None:
        """The retention sweeper finished a sweep."""
        self.metrics.ges_retention_last_sweep_timestamp_seconds.set((), time.time())

    def audited(self, outcome: str) -> None:
        """An audit entry was stored (``outcome``: ok, denied, failed)."""
        self.metrics.ges_audit_entries_total.inc((outcome,))

    def audit_write_failed(self) -> None:
        """An audit entry could not be stored."""
        self.metrics.ges_audit_write_failures_total.inc()

    def erased(self, kind: str) -> None:
        """An erasure (``callback`` or ``phone_number``) was committed and audited."""
        self.metrics.ges_erasures_total.inc((kind,))

    def auth_failed(self, kind: str) -> None:
        """An authentication of ``kind`` (bruteforce.KINDS) failed: a bad or missing secret."""
        self.metrics.ges_auth_failures_total.inc((kind,))

    def auth_rate_limited(self, kind: str) -> None:
        """An attempt of ``kind`` was refused (429) because its address is over its limit."""
        self.metrics.ges_auth_rate_limited_total.inc((kind,))

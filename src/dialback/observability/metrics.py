"""The live metrics of one process, built from the catalogue, with scrape-time collectors."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import resource
import shutil
import time
from pathlib import Path

from dialback import __version__
from dialback.observability.catalogue import (
    AUDIT_OUTCOMES,
    AUTH_KINDS,
    CATALOGUE,
    ERASURE_KINDS,
    RETENTION_KINDS,
    MetricDef,
)
from dialback.observability.registry import Family, Registry

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

HEALTH_GAUGES = (
    "REDIS_CONNECTION",
    "ORS_REDIS_STATUS",
    "GWS_AUTH_STATUS",
    "GWS_ENV_STATUS",
    "GWS_CONFIG_STATUS",
    "ALL_URS_DOWN",
    "POSTGRES_STATUS",
)
MONITOR_TYPES = ("scheduled", "due", "queued", "routing", "processing")
# ges_deadline_actions_total's labels: what a routed state's deadline did.
DEADLINE_STATES = ("queued", "routing", "processing")
DEADLINE_ACTIONS = ("republished", "retried", "completed")
# Reasons of ges_http_edge_refusals_total (web/edge.py).
EDGE_REFUSALS = ("header_timeout", "header_too_large", "body_timeout")


def _family(d: MetricDef) -> Family:
    return Family(d.name, d.kind, d.exposition, d.help, d.labels, d.buckets)


def memory_limit_bytes() -> int:
    """The cgroup memory limit, or physical memory when there is none."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:
            return int(raw)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def rss_bytes() -> int:
    """Resident set size of this process."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


GWS_ALARMS = frozenset({"GWS_INCORRECT_CLIENT_CREDENTIALS", "GWS_SERVER_ERROR"})


class Metrics:
    """Every family of the catalogue, registered, with GES defaults in place.

    Each family is the attribute of its metric's exact name (``metrics.GES_HEALTH``,
    ``metrics.ges_due_backlog``); the annotations below list them and a unit test holds them
    equal to the catalogue.
    """

    ges_callbacks_created: Family
    ges_callin_created: Family
    ges_push_notifications_sent: Family
    ges_monitor_size: Family
    ges_http_requests_total: Family
    ges_http_failed_requests_total: Family
    ges_http_request_duration_seconds: Family
    ges_process_cpu_seconds_total: Family
    ges_process_resident_memory_bytes: Family
    ges_process_start_time_seconds: Family
    ges_process_open_fds: Family
    ges_process_max_fds: Family
    ges_data_dir_used_bytes: Family
    ges_data_dir_free_bytes: Family
    ges_nodejs_eventloop_lag_seconds: Family
    application_ccecp_nodejs_eventloop_lag_seconds: Family
    ges_eventloop_lag_seconds: Family
    ges_nodejs_heap_space_size_used_bytes: Family
    ges_nodejs_heap_space_size_available_bytes: Family
    REDIS_CONNECTION: Family
    ORS_REDIS_STATUS: Family
    GWS_AUTH_STATUS: Family
    GWS_ENV_STATUS: Family
    GWS_CONFIG_STATUS: Family
    ALL_URS_DOWN: Family
    POSTGRES_STATUS: Family
    GES_HEALTH: Family
    ges_dependency_last_check_timestamp_seconds: Family
    ges_dependency_check_duration_seconds: Family
    RBAC_CREATE_VQ_PROXY_ERROR: Family
    DNS_FAILURE: Family
    GES_DNS_FAILURE: Family
    UNCAUGHT_EXCEPTION: Family
    INVALID_CONTENT_LENGTH: Family
    LOGGING_FAILURE: Family
    MONITOR_LAGGING_BEHIND: Family
    CB_TTL_LIMIT_REACHED: Family
    CB_ENQUEUE_LIMIT_REACHED: Family
    CB_SUBMIT_FAILED: Family
    CB_PARKED: Family
    GWS_SERVER_ERROR: Family
    GWS_INCORRECT_CLIENT_CREDENTIALS: Family
    NEXUS_ACCESS_FAILURE: Family
    http_400_tolerance: Family
    http_401_tolerance: Family
    http_404_tolerance: Family
    http_500_tolerance: Family
    rbac_create_vq_proxy_error_tolerance: Family
    invalid_content_length_tolerance: Family
    ges_dispatch_lateness_seconds: Family
    ges_due_backlog: Family
    ges_due_oldest_age_seconds: Family
    ges_parked_callbacks: Family
    ges_monitor_dispatch_stalled_seconds: Family
    ges_dispatch_outcomes_total: Family
    ges_http_edge_refusals_total: Family
    ges_callbacks_create_replayed_total: Family
    ges_monitor_cycle_duration_seconds: Family
    ges_monitor_last_run_timestamp_seconds: Family
    ges_build_info: Family
    ges_deadline_actions_total: Family
    ges_routing_stream_losses_total: Family
    ges_retention_purged_total: Family
    ges_retention_last_sweep_timestamp_seconds: Family
    ges_erasures_total: Family
    ges_audit_entries_total: Family
    ges_audit_write_failures_total: Family
    ges_auth_failures_total: Family
    ges_auth_rate_limited_total: Family

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        tolerances: dict[str, float] | None = None,
        gws: bool = True,
    ) -> None:
        self.registry = Registry()
        for d in CATALOGUE:
            setattr(self, d.name, self.registry.add(_family(d)))
        self.data_dir = data_dir
        self._slow_checked = -math.inf
        self.start_time = time.time()
        # Alarm counters exist at 0 from the start, unlike GES, so increase() sees the first one;
        # the GWS ones only with a GWS-style dependency (``gws``: an OIDC provider or a health
        # URL), as their gauges.
        for d in CATALOGUE:
            if d.category == "alarm" and not d.labels and (gws or d.name not in GWS_ALARMS):
                self.registry.get(d.name).ensure()
        for t in MONITOR_TYPES:
            self.ges_monitor_size.set((t,), 0)
        for reason in ("answered", "no-answer", "busy", "failed", "cancelled", "retry", "timeout"):
            self.ges_dispatch_outcomes_total.ensure((reason,))
        for state in DEADLINE_STATES:
            for action in DEADLINE_ACTIONS:
                self.ges_deadline_actions_total.ensure((state, action))
        self.ges_routing_stream_losses_total.ensure()
        for listener in ("public", "internal"):
            for edge_reason in EDGE_REFUSALS:
                self.ges_http_edge_refusals_total.ensure((listener, edge_reason))
        self.ges_dispatch_lateness_seconds.ensure()
        self.ges_monitor_cycle_duration_seconds.ensure()
        self.ges_eventloop_lag_seconds.ensure()
        self.ges_nodejs_eventloop_lag_seconds.set((), 0)
        self.application_ccecp_nodejs_eventloop_lag_seconds.set((), 0)
        self.ges_build_info.set((__version__, platform.python_version()), 1)
        self.ges_process_start_time_seconds.set((), self.start_time)
        for name, value in (tolerances or {}).items():
            self.registry.get(name).set((), value)
        self.GES_HEALTH.set((), 0)
        self.registry.collectors.append(self._collect_process)
        for kind in RETENTION_KINDS:
            self.ges_retention_purged_total.ensure((kind,))
        for kind in ERASURE_KINDS:
            self.ges_erasures_total.ensure((kind,))
        for outcome in AUDIT_OUTCOMES:
            self.ges_audit_entries_total.ensure((outcome,))
        self.ges_audit_write_failures_total.ensure()
        self.ges_retention_last_sweep_timestamp_seconds.set((), 0)
        for kind in AUTH_KINDS:
            self.ges_auth_failures_total.ensure((kind,))
            self.ges_auth_rate_limited_total.ensure((kind,))

    def health_gauge(self, name: str) -> Family:
        """The health gauge of a dependency (one of ``HEALTH_GAUGES``)."""
        if name not in HEALTH_GAUGES:
            raise KeyError(name)
        return self.registry.get(name)

    def exported(self, name: str, values: tuple[str, ...] = ()) -> float | None:
        """The value ``/metrics`` exports for one gauge or counter series (None: it exports
        none); for readers such as the UI's Health page (``health_view``)."""
        return self.registry.get(name).series.get(values)

    def tenant_known(self, tenant: str) -> None:
        """Create a tenant's series at 0, so its first throttle or booking is seen."""
        self.CB_TTL_LIMIT_REACHED.ensure((tenant,))
        self.CB_ENQUEUE_LIMIT_REACHED.ensure((tenant,))
        self.ges_callin_created.ensure((tenant,))
        self.ges_callbacks_create_replayed_total.ensure((tenant,))
        for result in ("success", "failure"):
            self.ges_push_notifications_sent.ensure((tenant, result))

    def service_known(self, tenant: str, service: str) -> None:
        """Create a service's callbacks-created series at 0."""
        self.ges_callbacks_created.ensure((tenant, service))

    def _collect_process(self) -> None:
        try:
            with open("/proc/self/stat", "rb") as fh:
                parts = fh.read().rsplit(b")", 1)[1].split()
            cpu = (int(parts[11]) + int(parts[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            ru = resource.getrusage(resource.RUSAGE_SELF)
            cpu = ru.ru_utime + ru.ru_stime
        self.ges_process_cpu_seconds_total.set((), cpu)
        rss = rss_bytes()
        self.ges_process_resident_memory_bytes.set((), rss)
        self.ges_nodejs_heap_space_size_used_bytes.set(("process",), rss)
        with contextlib.suppress(OSError):
            self.ges_process_open_fds.set((), len(os.listdir("/proc/self/fd")))
        now = time.monotonic()
        # What changes seldom and costs file reads (reading the cgroup limit was a tenth of a
        # scrape's CPU at 5,000 series; walking the data directory costs more): every 10 s.
        if now - self._slow_checked <= 10:
            return
        self._slow_checked = now
        self.ges_nodejs_heap_space_size_available_bytes.set(("process",), memory_limit_bytes())
        self.ges_process_max_fds.set((), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        if self.data_dir is not None:
            exists = self.data_dir.exists()
            self.ges_data_dir_used_bytes.set((), _dir_size(self.data_dir) if exists else 0)
            # Not created yet: the free space where it will be created.
            probe = self.data_dir.resolve()
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            self.ges_data_dir_free_bytes.set((), shutil.disk_usage(probe).free)

"""The live metrics of one process, built from the catalogue, with scrape-time collectors."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import time
from pathlib import Path

from dialback import __version__
from dialback.observability.catalogue import CATALOGUE, MetricDef
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


class Metrics:
    """Every family of the catalogue, registered, with GES defaults in place."""

    def __init__(
        self, *, data_dir: Path | None = None, tolerances: dict[str, float] | None = None
    ) -> None:
        self.registry = Registry()
        self.f: dict[str, Family] = {d.name: self.registry.add(_family(d)) for d in CATALOGUE}
        f = self.f
        self.callbacks_created = f["ges_callbacks_created"]
        self.callin_created = f["ges_callin_created"]
        self.push_sent = f["ges_push_notifications_sent"]
        self.monitor_size = f["ges_monitor_size"]
        self.http_requests = f["ges_http_requests_total"]
        self.http_failed = f["ges_http_failed_requests_total"]
        self.http_duration = f["ges_http_request_duration_seconds"]
        self.lag = f["ges_nodejs_eventloop_lag_seconds"]
        self.lag_alias = f["application_ccecp_nodejs_eventloop_lag_seconds"]
        self.lag_hist = f["ges_eventloop_lag_seconds"]
        self.lateness = f["ges_dispatch_lateness_seconds"]
        self.outcomes = f["ges_dispatch_outcomes_total"]
        self.cycle = f["ges_monitor_cycle_duration_seconds"]
        self.data_dir = data_dir
        self._data_dir_checked = 0.0
        self.start_time = time.time()
        # Alarm counters exist at 0 from the start, unlike GES, so increase() sees the first one.
        for d in CATALOGUE:
            if d.category == "alarm" and not d.labels:
                f[d.name].ensure()
        for t in MONITOR_TYPES:
            self.monitor_size.set((t,), 0)
        for reason in ("answered", "no-answer", "busy", "failed", "cancelled", "retry"):
            self.outcomes.ensure((reason,))
        self.lateness.ensure()
        self.cycle.ensure()
        self.lag_hist.ensure()
        self.lag.set((), 0)
        self.lag_alias.set((), 0)
        f["ges_build_info"].set((__version__, platform.python_version()), 1)
        f["ges_process_start_time_seconds"].set((), self.start_time)
        for name, value in (tolerances or {}).items():
            f[name].set((), value)
        f["GES_HEALTH"].set((), 0)
        self.registry.collectors.append(self._collect_process)

    def alarm(self, name: str, *labels: str, amount: float = 1) -> None:
        """Count one occurrence of an alarm."""
        self.f[name].inc(labels, amount)

    def tenant_known(self, tenant: str) -> None:
        """Create a tenant's series at 0, so its first throttle or booking is seen."""
        for name in ("CB_TTL_LIMIT_REACHED", "CB_ENQUEUE_LIMIT_REACHED"):
            self.f[name].ensure((tenant,))
        self.callin_created.ensure((tenant,))
        for result in ("success", "failure"):
            self.push_sent.ensure((tenant, result))

    def service_known(self, tenant: str, service: str) -> None:
        """Create a service's callbacks-created series at 0."""
        self.callbacks_created.ensure((tenant, service))

    def _collect_process(self) -> None:
        f = self.f
        try:
            with open("/proc/self/stat", "rb") as fh:
                parts = fh.read().rsplit(b")", 1)[1].split()
            cpu = (int(parts[11]) + int(parts[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            ru = resource.getrusage(resource.RUSAGE_SELF)
            cpu = ru.ru_utime + ru.ru_stime
        f["ges_process_cpu_seconds_total"].set((), cpu)
        rss = rss_bytes()
        f["ges_process_resident_memory_bytes"].set((), rss)
        f["ges_nodejs_heap_space_size_used_bytes"].set(("process",), rss)
        f["ges_nodejs_heap_space_size_available_bytes"].set(("process",), memory_limit_bytes())
        with contextlib.suppress(OSError):
            f["ges_process_open_fds"].set((), len(os.listdir("/proc/self/fd")))
        f["ges_process_max_fds"].set((), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        now = time.monotonic()
        # Walking the data directory is not free: at most every 10 s.
        if self.data_dir is not None and now - self._data_dir_checked > 10:
            self._data_dir_checked = now
            exists = self.data_dir.exists()
            f["ges_data_dir_used_bytes"].set((), _dir_size(self.data_dir) if exists else 0)
            # Not created yet: the free space where it will be created.
            probe = self.data_dir.resolve()
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            f["ges_data_dir_free_bytes"].set((), shutil.disk_usage(probe).free)

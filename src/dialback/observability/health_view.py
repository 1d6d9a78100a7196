"""What the Callback UI's Health page shows, read from where ``/metrics`` reads it: the health
checker's dependencies and the metric families it and the monitor set. Nothing is computed a
second time, so the page and a scrape taken at the same moment agree."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dialback.observability.health import HealthChecker
from dialback.observability.metrics import MONITOR_TYPES, Metrics


@dataclass(frozen=True)
class DependencyState:
    """One dependency as the checker last saw it, with its gauge's exported value."""

    name: str
    gauge: str | None
    gauge_value: float | None  # None: not exported (no gauge, or not checked yet)
    status: str  # "up", "down" or "unknown"
    required: bool
    in_ges_health: bool
    last_check: float | None
    check_seconds: float | None
    error: str


@dataclass(frozen=True)
class HealthSnapshot:
    """Dependency health, the due backlog and the routing engine, at ``at``."""

    at: float
    ready: bool
    ges_health: float | None
    dependencies: tuple[DependencyState, ...]
    due_backlog: float | None
    oldest_due_age: float | None
    parked: float | None
    monitor_size: dict[str, float | None]
    monitor_last_run: float | None
    routing_engine_watched: bool
    consumers_seen: int | None
    consumers_seen_at: float | None
    consumer_window_seconds: float

    def as_json(self) -> dict[str, Any]:
        """The snapshot as JSON (``GET /ui/health.json``)."""
        return {
            "at": self.at,
            "ready": self.ready,
            "gesHealth": self.ges_health,
            "dependencies": [
                {
                    "name": d.name,
                    "gauge": d.gauge,
                    "gaugeValue": d.gauge_value,
                    "status": d.status,
                    "required": d.required,
                    "inGesHealth": d.in_ges_health,
                    "lastCheck": d.last_check,
                    "checkSeconds": d.check_seconds,
                    "error": d.error,
                }
                for d in self.dependencies
            ],
            "backlog": {
                "due": self.due_backlog,
                "oldestDueAgeSeconds": self.oldest_due_age,
                "parked": self.parked,
                "monitorSize": self.monitor_size,
                "monitorLastRun": self.monitor_last_run,
            },
            "routingEngine": {
                "watched": self.routing_engine_watched,
                "consumersSeen": self.consumers_seen,
                "seenAt": self.consumers_seen_at,
                "windowSeconds": self.consumer_window_seconds,
            },
        }


class HealthView:
    """Reads one snapshot of health for the UI (the page and its JSON both use it)."""

    def __init__(self, checker: HealthChecker, metrics: Metrics) -> None:
        self.checker = checker
        self.metrics = metrics

    def snapshot(self) -> HealthSnapshot:
        """Health now, as the last checks and the monitor's statistics left it."""
        m = self.metrics
        checker = self.checker
        ready, _detail = checker.readiness()
        deps = tuple(
            DependencyState(
                name=d.name,
                gauge=d.gauge,
                gauge_value=m.exported(d.gauge) if d.gauge else None,
                status="up" if d.up else ("down" if d.up is False else "unknown"),
                required=d.required,
                in_ges_health=d.in_ges_health,
                last_check=m.exported("ges_dependency_last_check_timestamp_seconds", (d.name,)),
                check_seconds=m.exported("ges_dependency_check_duration_seconds", (d.name,)),
                error=d.error if d.up is False else "",
            )
            for d in checker.dependencies
        )
        watched = any(d.name == "routing_engine" for d in checker.dependencies)
        return HealthSnapshot(
            at=time.time(),
            ready=ready,
            ges_health=m.exported("GES_HEALTH"),
            dependencies=deps,
            due_backlog=m.exported("ges_due_backlog"),
            oldest_due_age=m.exported("ges_due_oldest_age_seconds"),
            parked=m.exported("ges_parked_callbacks"),
            monitor_size={t: m.exported("ges_monitor_size", (t,)) for t in MONITOR_TYPES},
            monitor_last_run=m.exported("ges_monitor_last_run_timestamp_seconds"),
            routing_engine_watched=watched,
            consumers_seen=checker.consumers_seen if watched else None,
            consumers_seen_at=checker.consumers_seen_at if watched else None,
            consumer_window_seconds=checker.settings.routing_engine_idle_seconds,
        )

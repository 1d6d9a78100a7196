"""The Health page: the live dependency gauges (the values ``/metrics`` exports), the due
backlog and the routing engine, refreshed in place by ``health.js`` from ``/ui/health.json``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from dialback.identity.roles import Permission
from dialback.observability.health_view import HealthSnapshot
from dialback.ui.deps import UiSessionDep, ui_requires, ui_router
from dialback.ui.rendering import operator_zone, render
from dialback.web.deps import ContainerDep

router = ui_router()
NAV_PATHS = ("/health",)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
POLL_SECONDS = 5
SIZE_STATES = ("scheduled", "queued", "routing", "processing")

Cell = dict[str, Any]
"""What one cell shows: ``text``; ``state`` (up, down, unknown) for a badge; ``ts`` and the
``local`` and ``utc`` text for a time."""


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _interval(low: float, high: float) -> str:
    return f"{low:g}" if low == high else f"{low:g} to {high:g}"


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _time(ts: float | None, zone: ZoneInfo) -> Cell:
    if ts is None or ts <= 0:
        return {"text": "—", "ts": None}
    at = datetime.fromtimestamp(ts, UTC)
    return {
        "text": at.astimezone(zone).strftime(TIME_FORMAT),
        "ts": ts,
        "utc": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _state(status: str) -> Cell:
    return {"text": status, "state": status}


def cells(s: HealthSnapshot, zone: ZoneInfo) -> dict[str, Cell]:
    """Every cell of the page by its id (``data-cell``), as the page and its JSON show it."""
    out: dict[str, Cell] = {"as-of": _time(s.at, zone)}
    if s.ges_health is None:
        out["ges-health"] = {"text": "not exported yet", "state": "unknown"}
    else:
        n = int(s.ges_health)
        text = "0: healthy" if n == 0 else f"{n}: {n} dependenc{'y' if n == 1 else 'ies'} down"
        out["ges-health"] = {"text": text, "state": "up" if n == 0 else "down"}
    out["ready"] = (
        {"text": "ready", "state": "up"}
        if s.ready
        else {"text": "not ready (a required dependency is not up)", "state": "down"}
    )
    for d in s.dependencies:
        key = f"dep-{d.name}"
        out[f"{key}-status"] = _state(d.status)
        out[f"{key}-gauge"] = {"text": "—" if d.gauge_value is None else f"{d.gauge_value:g}"}
        out[f"{key}-checked"] = _time(d.last_check, zone)
        out[f"{key}-took"] = {
            "text": "—" if d.check_seconds is None else f"{d.check_seconds * 1000:.0f} ms"
        }
        out[f"{key}-error"] = {"text": d.error or "—"}
    out["due-backlog"] = {"text": _count(s.due_backlog)}
    out["oldest-due-age"] = {"text": _age(s.oldest_due_age)}
    out["parked"] = {"text": _count(s.parked)}
    for state in SIZE_STATES:
        out[f"size-{state}"] = {"text": _count(s.monitor_size.get(state))}
    out["monitor-last-run"] = _time(s.monitor_last_run, zone)
    if not s.routing_engine_watched:
        out["consumers"] = {"text": "not watched (no routing engine is expected)"}
    elif s.consumers_seen is None:
        out["consumers"] = {"text": "not read yet"}
    else:
        out["consumers"] = {"text": f"{s.consumers_seen}"}
    out["consumers-at"] = _time(s.consumers_seen_at, zone)
    return out


@router.get("/health", name="ui_health", dependencies=[ui_requires(Permission.HEALTH_READ)])
async def health_page(request: Request, c: ContainerDep, session: UiSessionDep) -> Response:
    """Dependency health, the due backlog and the routing engine, as ``/metrics`` has them."""
    snapshot = c.health_view.snapshot()
    return render(
        request,
        "health/index.html",
        snap=snapshot,
        cells=cells(snapshot, operator_zone(request)),
        size_states=SIZE_STATES,
        time_format=TIME_FORMAT,
        poll_seconds=POLL_SECONDS,
        idle_seconds=int(session.idle_seconds),
        check_every=_interval(
            c.settings.health_check_min_seconds, c.settings.health_check_max_seconds
        ),
    )


@router.get(
    "/health.json", name="ui_health_json", dependencies=[ui_requires(Permission.HEALTH_READ)]
)
async def health_json(request: Request, c: ContainerDep) -> Response:
    """The Health page's values as JSON (``health.js`` polls it): the snapshot and its cells."""
    snapshot = c.health_view.snapshot()
    body = snapshot.as_json() | {"cells": cells(snapshot, operator_zone(request))}
    return JSONResponse(body)

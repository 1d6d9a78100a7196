"""The benchmark's outputs: ``bench/results/latest.json`` and the table in docs/performance.md."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from bench.history import GOALS as HISTORY_GOALS

# The figures, each with its goal (None: reported, no goal).
GOALS: dict[str, dict[str, Any]] = {
    "creates_per_s": {
        "op": ">=",
        "value": 2500,
        "unit": "/s",
        "what": "create throughput of one process at saturation (32 connections), everything on",
    },
    "create_p99_ms_at_8": {
        "op": "<=",
        "value": 10,
        "unit": "ms",
        "what": "create p99 latency with 8 connections",
    },
    "create_vs_floor_ratio": {
        "op": ">=",
        "value": 0.7,
        "unit": "",
        "what": "creates_per_s / the floor app's (same I/O, nothing else)",
    },
    "observability_overhead_ratio": {
        "op": ">=",
        "value": 0.95,
        "unit": "",
        "what": "metrics on + info logs / per-request observability off + error logs (two twin processes)",
    },
    "instrumentation_vs_peer_ratio": {
        "op": "<",
        "value": 1,
        "unit": "",
        "what": "per-request observability cost / prometheus-fastapi-instrumentator's",
    },
    "trace_vs_info_ratio": {
        "op": None,
        "value": None,
        "unit": "",
        "what": "create throughput with trace logging / with info",
    },
    "dispatch_per_s": {
        "op": ">=",
        "value": 10000,
        "unit": "/s",
        "what": "monitor drain rate of a due backlog published in bulk",
    },
    "dispatch_lateness_p99_s": {
        "op": "<",
        "value": 1,
        "unit": "s",
        "what": "due -> published p99 among many scheduled callbacks",
    },
    "metrics_render_ms": {
        "op": "<",
        "value": 5,
        "unit": "ms",
        "what": "/metrics response time under create load (median)",
    },
    "metrics_bytes": {"op": None, "value": None, "unit": "B", "what": "/metrics size"},
    "rss_idle_mb": {
        "op": None,
        "value": None,
        "unit": "MiB",
        "what": "dialback RSS, idle after setup",
    },
    "rss_load_mb": {
        "op": None,
        "value": None,
        "unit": "MiB",
        "what": "dialback RSS, peak seen under load",
    },
    **HISTORY_GOALS,
    # Issue 14, goals 2-7 (bench/scale.py and the create rounds).
    "create_cpu_us": {
        "op": None,
        "value": None,
        "unit": "µs",
        "what": "dialback process CPU per create (user + system, info rounds)",
    },
    "floor_cpu_us": {
        "op": None,
        "value": None,
        "unit": "µs",
        "what": "the floor app's process CPU per create",
    },
    "peer_dispatch_per_s": {
        "op": None,
        "value": None,
        "unit": "/s",
        "what": "pgqueuer draining the same number of due no-op jobs, same PostgreSQL",
    },
    "dispatch_vs_peer_ratio": {
        "op": ">=",
        "value": 2,
        "unit": "",
        "what": "dispatch_per_s / peer_dispatch_per_s",
    },
    "export_rows_per_s": {
        "op": ">=",
        "value": 50000,
        "unit": "/s",
        "what": "CSV export of 100,000 callbacks through the admin export route",
    },
    "export_rss_growth_mib": {
        "op": "<",
        "value": 20,
        "unit": "MiB",
        "what": "server peak RSS growth during that export",
    },
    "metrics_render_ms_5k_series": {
        "op": "<",
        "value": 3,
        "unit": "ms",
        "what": "/metrics response time under create load (median), >= 5,000 series",
    },
    "replicas_2_create_ratio": {
        "op": None,
        "value": None,
        "unit": "",
        "what": "create throughput of 2 replicas on one PostgreSQL / of 1",
    },
    "replicas_2_dispatch_ratio": {
        "op": None,
        "value": None,
        "unit": "",
        "what": "dispatch drain rate of 2 replicas / of 1",
    },
    "make_run_cold_start_s": {
        "op": "<=",
        "value": 30,
        "unit": "s",
        "what": "make run on a fresh clone until /health/ready (runtime dependencies only)",
    },
}
REQUIRED_KEYS = tuple(GOALS)
# Reported next to the goals in the docs table.
EXTRA_ROWS = (
    ("floor_per_s", "/s", "the floor app's throughput (same session)"),
    ("logs_only_overhead_ratio", "", "info logs / error logs, same process, metrics on"),
    (
        "info_vs_noobs_ratio",
        "",
        "dialback A at info / the process without observability (A's history included)",
    ),
    ("instrumentation_dialback_us", "µs", "dialback per-request observability cost (metrics only)"),
    ("instrumentation_peer_us", "µs", "prometheus-fastapi-instrumentator cost per request"),
    (
        "instrumentation_dialback_with_log_us",
        "µs",
        "dialback per-request observability cost with its info request line",
    ),
    ("create_cpu_ms_per_request", "ms", "dialback process CPU per create"),
    ("floor_cpu_ms_per_request", "ms", "floor process CPU per create"),
    ("create_p99_ms_at_saturation", "ms", "create p99 at 32 connections (queueing)"),
    ("creates_per_s_at_8", "/s", "create throughput with 8 connections"),
    ("create_pg_sessions_per_1k", "", "PostgreSQL sessions opened per 1,000 creates (pool churn)"),
    ("metrics_render_idle_ms", "ms", "/metrics response time, idle"),
    ("metrics_series", "", "samples in /metrics"),
    ("dispatch_publish_rate_per_s", "/s", "publish rate between first and last entry"),
    (
        "dispatch_lateness_p99_s_histogram_bound",
        "s",
        "p99 bucket bound of ges_dispatch_lateness_seconds",
    ),
    ("dispatch_lateness_scheduled_rows", "", "SCHEDULED rows in the store during the lateness run"),
    ("metrics_series_5k", "", "samples in /metrics for the 5,000-series render"),
    ("metrics_render_idle_ms_5k_series", "ms", "/metrics response time at 5,000 series, idle"),
    ("create_app_cpu_us", "µs", "replica CPU per create (1 replica, replica rounds)"),
    ("create_pg_cpu_us", "µs", "PostgreSQL CPU per create (all its processes)"),
    ("create_redis_cpu_us", "µs", "Redis CPU per create (both servers)"),
    ("create_wal_bytes", "B", "WAL bytes per create"),
    ("create_db_bytes", "B", "database growth per create"),
    ("dispatch_app_cpu_us", "µs", "replica CPU per dispatched callback"),
    ("dispatch_pg_cpu_us", "µs", "PostgreSQL CPU per dispatched callback"),
    ("dispatch_wal_bytes", "B", "WAL bytes per dispatched callback"),
)


def met(key: str, value: float) -> bool | None:
    """Whether a figure meets its goal (None: no goal)."""
    g = GOALS.get(key)
    if not g or g["op"] is None or not math.isfinite(value):
        return None if not g or g["op"] is None else False
    target = g["value"]
    return {">=": value >= target, "<=": value <= target, "<": value < target}[g["op"]]


def write_json(report: dict[str, Any], path: Path) -> None:
    """Write the report atomically (numbers rounded, goals evaluated)."""
    report = {**report, "met": {k: met(k, report[k]) for k in REQUIRED_KEYS}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _fmt(v: float, unit: str) -> str:
    if not math.isfinite(v):
        return "n/a"
    if abs(v) >= 100 or float(v).is_integer():
        text = f"{v:,.0f}"
    elif abs(v) >= 10:
        text = f"{v:.1f}"
    else:
        text = f"{v:.3g}"
    return f"{text} {unit}".strip()


BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"


def results_section(report: dict[str, Any]) -> str:
    """The generated part of docs/performance.md."""
    lines = [BEGIN, ""]
    m = report["machine"]
    v = report["versions"]
    lines.append(
        f"Run `{report['profile']}` ({'make bench-quick' if report['quick'] else 'make bench'}) "
        f"at {report['started_at']}, {report['duration_s']:.0f} s, load tool {report['load_tool']}; "
        f"{m['cpus']} x {m['cpu_model']}, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average {m['loadavg_at_start'][0]:.2f} at start, {m['loadavg_at_end'][0]:.2f} at end."
    )
    lines.append("")
    lines.append("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".")
    lines += ["", "| figure | goal | measured | met? |", "|---|---|---|---|"]
    for key, g in GOALS.items():
        goal = f"{g['op']} {_fmt(g['value'], g['unit'])}" if g["op"] else "—"
        ok = met(key, report[key])
        mark = "—" if ok is None else ("yes" if ok else "**no**")
        lines.append(
            f"| `{key}` — {g['what']} | {goal} | {_fmt(report[key], g['unit'])} | {mark} |"
        )
    lines += ["", "Next to them:", "", "| figure | measured |", "|---|---|"]
    for key, unit, what in EXTRA_ROWS:
        if key in report:
            lines.append(f"| `{key}` — {what} | {_fmt(report[key], unit)} |")
    lines += ["", END]
    return "\n".join(lines)


def write_docs(report: dict[str, Any], path: Path) -> None:
    """Replace the generated section of docs/performance.md (between its markers)."""
    text = path.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0:
        raise RuntimeError(f"{path} lacks the markers {BEGIN} / {END}")
    path.write_text(text[:start] + results_section(report) + text[end + len(END) :])

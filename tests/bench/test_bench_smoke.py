"""The benchmark harness runs end to end in its tiny smoke mode and reports every figure.

No timed assertion: the figures of a smoke run mean nothing (a second of load from a Python
generator on a busy machine); this checks that the harness works — servers, dialback
variants, the floor app, the in-process instrumentation comparison, dispatch and lateness, and
the scale figures (pgqueuer's drain, the export, /metrics with more series, two replicas, the
cold start of ``make run``) —
and that the JSON report carries every key as a number. ``make bench`` uses wrk; the smoke
mode does not need it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from bench.report import GOALS, REQUIRED_KEYS, results_section
from bench.scale import SIZES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smoke_run_reports_every_figure_as_a_number(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())
    for key in REQUIRED_KEYS:
        value = report.get(key)
        assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
        assert math.isfinite(value), (key, value)
    # Figures that cannot be zero when the harness really drove load and dispatched.
    for key in ("creates_per_s", "dispatch_per_s", "metrics_bytes", "rss_idle_mb", "rss_load_mb"):
        assert report[key] > 0, (key, report[key])
    assert report["quick"] is True and report["profile"] == "smoke"
    assert report["dispatch_lateness_unpublished"] == 0
    assert set(report["goals"]) == set(GOALS)
    assert set(report["met"]) == set(REQUIRED_KEYS)
    assert report["versions"]["dialback"] and report["machine"]["cpus"]
    # The figures so far, written after each phase beside the report: after the last, all.
    partial = json.loads((tmp_path / "latest.partial.json.tmp").read_text())
    assert list(partial["phase_seconds"])[-1] == "history"
    for key in ("creates_per_s", "dispatch_per_s"):  # the report rounds them
        assert partial["figures"][key] == pytest.approx(report[key], rel=1e-3), key
    # Every variant of the side-by-side comparison ran and answered only 2xx.
    rounds = report["details"]["create_rounds"]
    for variant in ("info", "error", "trace", "noobs", "floor", "info_at_8"):
        assert rounds[variant] and all(r["status_errors"] == 0 for r in rounds[variant]), variant
    # The scale figures (issue 14): each measured, not defaulted.
    for key in (
        "create_cpu_us",
        "floor_cpu_us",
        "peer_dispatch_per_s",
        "dispatch_vs_peer_ratio",
        "export_rows_per_s",
        "replicas_2_create_ratio",
        "replicas_2_dispatch_ratio",
        "create_pg_cpu_us",
        "create_wal_bytes",
        "dispatch_wal_bytes",
        "make_run_cold_start_s",
    ):
        assert report[key] > 0, (key, report[key])
    scale = report["details"]["scale"]
    assert report["details"]["peer_runs"][0]["peer_jobs"] == report["dispatch_rows"]
    assert scale["export"]["export_rows"] == SIZES["smoke"].export_rows
    assert report["metrics_series_5k"] >= SIZES["smoke"].series_target
    assert report["export_rss_growth_mib"] >= 0
    # The docs table renders from this report (one row per goal).
    table = results_section(report)
    assert all(f"`{key}`" in table for key in REQUIRED_KEYS)

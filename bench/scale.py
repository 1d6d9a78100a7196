"""The scale figures of a run (issue 14 goals 4-7), after the dispatch phase (which drains
pgqueuer beside dialback: ``Run.dispatching``): the CSV export, ``/metrics`` at 5,000 series,
two replicas against one, and the cold start of ``make run``. One entry point: ``measure``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench import coldstart, export, replicas
from bench.stack import populate_tenants


@dataclass(frozen=True)
class Sizes:
    """How big each scale measurement is, per profile."""

    export_rows: int
    series_target: int
    replica_rounds: int
    replica_seconds: float
    replica_rows: int
    services_per_tenant: int


SIZES = {
    "full": Sizes(100_000, 5_000, 5, 8, 100_000, 10),
    "quick": Sizes(30_000, 5_000, 2, 2, 30_000, 10),
    "smoke": Sizes(2_000, 150, 1, 1, 2_000, 2),
}


def _series(run: Any) -> int:
    import httpx

    text = httpx.get(f"{run.a.internal_url}/metrics", timeout=30).text
    return sum(1 for ln in text.splitlines() if ln and not ln.startswith("#"))


def metrics_at_series(run: Any, target: int, services: int) -> dict[str, float]:
    """More tenants until ``/metrics`` has ``target`` series, then the runner's render run."""
    batch = 0
    while (have := _series(run)) < target:
        per_service = max(1.0, have / max(1, run.p.tenants * run.p.services_per_tenant + 1))
        tenants = max(1, int((target - have) / per_service / services) + 1)
        populate_tenants(run.a, run.a.public_port, tenants, services, run.desired, f"x{batch}t")
        batch += 1
    saved = run.details.get("metrics_render")
    figures = run.metrics_render()
    run.details["metrics_render_5k"] = run.details.pop("metrics_render")
    if saved is not None:
        run.details["metrics_render"] = saved
    return {
        "metrics_render_ms_5k_series": figures["metrics_render_ms"],
        "metrics_render_idle_ms_5k_series": figures["metrics_render_idle_ms"],
        "metrics_series_5k": figures["metrics_series"],
        "metrics_bytes_5k": figures["metrics_bytes"],
    }


def measure(run: Any) -> dict[str, float]:
    """Every scale figure; details go to ``run.details['scale']``."""
    s = SIZES[run.p.name]
    out: dict[str, float] = {}
    details: dict[str, Any] = {}
    run.details["scale"] = details
    phases: dict[str, float] = {}
    details["phase_seconds"] = phases
    t = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t
        phases[name] = round(time.monotonic() - t, 1)
        t = time.monotonic()

    run.log(f"export of {s.export_rows} callbacks")
    export.load_rows(run.a, run.servers.database_url, s.export_rows)
    e = export.measure_export(run.a, s.export_rows)
    details["export"] = e
    out.update({k: e[k] for k in ("export_rows_per_s", "export_rss_growth_mib")})
    lap("export")

    run.log(f"/metrics at {s.series_target} series")
    out.update(metrics_at_series(run, s.series_target, s.services_per_tenant))
    lap("metrics_5k")

    run.log("2 replicas against 1")
    figures, rep = replicas.measure(
        run,
        rounds=s.replica_rounds,
        seconds=s.replica_seconds,
        connections=run.p.connections,
        dispatch_rows=s.replica_rows,
    )
    details["replicas"] = rep
    out.update(figures)
    lap("replicas")

    run.log("make run on a fresh clone")
    out.update(coldstart.measure(reuse_venv=run.p.name == "smoke"))
    lap("cold_start")
    return out


BEGIN = "<!-- bench:sizing:begin -->"
END = "<!-- bench:sizing:end -->"
GIB = 1 << 30


def sizing(report: dict[str, Any]) -> list[tuple[str, float, str, str]]:
    """The sizing table of docs/scale.md: (what, value, unit, how) from a report's figures."""
    create_cpu = report["create_app_cpu_us"]
    dispatch_cpu = report["dispatch_app_cpu_us"]
    per_day = 1000 * 86400
    return [
        (
            "creates/s per replica core",
            1e6 / create_cpu,
            "/s",
            "1,000,000 / `create_app_cpu_us`",
        ),
        (
            "dispatches/s per replica core",
            1e6 / dispatch_cpu if dispatch_cpu > 0 else float("nan"),
            "/s",
            "1,000,000 / `dispatch_app_cpu_us`",
        ),
        (
            "PostgreSQL cores per 1,000 creates/s",
            report["create_pg_cpu_us"] / 1000,
            "cores",
            "`create_pg_cpu_us` x 1,000 / 1,000,000",
        ),
        (
            "PostgreSQL cores per 1,000 dispatches/s",
            report["dispatch_pg_cpu_us"] / 1000,
            "cores",
            "`dispatch_pg_cpu_us` x 1,000 / 1,000,000",
        ),
        (
            "Redis cores per 1,000 creates/s (both servers)",
            report["create_redis_cpu_us"] / 1000,
            "cores",
            "`create_redis_cpu_us` x 1,000 / 1,000,000",
        ),
        (
            "WAL per 1,000 creates/s (create + its dispatch)",
            (report["create_wal_bytes"] + report["dispatch_wal_bytes"]) * 1000 / (1 << 20),
            "MiB/s",
            "(`create_wal_bytes` + `dispatch_wal_bytes`) x 1,000",
        ),
        (
            "storage per callback",
            report["create_db_bytes"],
            "B",
            "`create_db_bytes` (rows and indexes a create adds)",
        ),
        (
            "storage per 1,000 creates/s per day of retention",
            report["create_db_bytes"] * per_day / GIB,
            "GiB",
            "`create_db_bytes` x 1,000 x 86,400",
        ),
    ]


def sizing_section(report: dict[str, Any]) -> str:
    """The generated part of docs/scale.md."""
    lines = [
        BEGIN,
        "",
        f"From the `{report['profile']}` run at {report['started_at']} "
        f"({report['machine']['cpus']} x {report['machine']['cpu_model']}).",
        "",
        "| what | value | how |",
        "|---|---|---|",
    ]
    for what, value, unit, how in sizing(report):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
        lines.append(f"| {what} | {text} {unit} | {how} |")
    lines += ["", END]
    return "\n".join(lines)


def write_docs(report: dict[str, Any], path: Any) -> None:
    """Replace the generated sizing table of docs/scale.md (between its markers)."""
    text = path.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0:
        raise RuntimeError(f"{path} lacks the markers {BEGIN} / {END}")
    path.write_text(text[:start] + sizing_section(report) + text[end + len(END) :])

"""The benchmark run: servers, processes, alternating load rounds, the JSON report.

Every comparison is taken side by side in one session: the variants run in alternating
rounds (the order rotates each round) and each ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from testbed.servers import free_port

from bench import bulkload, dispatch, history, peer, scale
from bench.load import LoadError, LoadResult, run_python_load, run_wrk, wrk_path
from bench.report import GOALS, write_docs, write_json
from bench.stack import (
    ADMIN_TOKEN,
    BENCH_SERVICE,
    BENCH_TENANT,
    PG_OPTIONS,
    ROOT,
    Dialback,
    ManagedProcess,
    Servers,
    create_tenant,
    populate_tenants,
    rss_mb,
)
from dialback.kit.timefmt import utc_iso

RESULTS = ROOT / "bench" / "results" / "latest.json"
# Smoke figures mean nothing: never written over latest.json (*.tmp is git-ignored).
SMOKE_RESULTS = ROOT / "bench" / "results" / "smoke.json.tmp"
DISPATCH_RESULTS = ROOT / "bench" / "results" / "dispatch.json.tmp"
DOCS = ROOT / "docs" / "performance.md"


@dataclass(frozen=True)
class Profile:
    """How big and how long each part of a run is."""

    name: str
    rounds: int
    round_seconds: float
    warmup_seconds: float
    connections: int
    tenants: int
    services_per_tenant: int
    instr_calls: int
    instr_rounds: int
    dispatch_rows: int
    lateness_rows: int
    lateness_due: int
    lateness_seconds: float
    render_seconds: float
    wrk: bool
    history_rows: int = 0  # callbacks bulk-loaded for the history figures (bench/history.py)


PROFILES = {
    "full": Profile(
        "full",
        5,
        10,
        2,
        32,
        50,
        10,
        5_000,
        15,
        100_000,
        1_000_000,
        5_000,
        40,
        8,
        True,
        history_rows=10_000_000,
    ),
    # Under 2 minutes: shorter rounds, 30k due at once, 100k scheduled rows instead of 1M.
    "quick": Profile(
        "quick", 3, 2, 1, 32, 50, 10, 1_000, 9, 30_000, 100_000, 1_000, 8, 3, True, 200_000
    ),
    "smoke": Profile("smoke", 1, 1, 0.3, 4, 3, 2, 200, 3, 2_000, 5_000, 40, 2, 1, False, 20_000),
}

LOOP_LAG = "ges_eventloop_lag_seconds"
# Variants of the create comparison. info, error and trace: dialback A (the process that also
# does the setup and the other measurements) at that log level. twin and noobs: two more
# processes started the same way and used for nothing else, one with per-request observability
# and logs at info, one without and with logs at error: the observability overhead compares
# them, so that A's history (setup, trace rounds) does not count as overhead. floor: the floor.
CREATE_VARIANTS = ("info", "error", "trace", "twin", "noobs", "floor")


def _cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(parts[11]) / tick, int(parts[12]) / tick


def _truncate_big(path: Path, limit: int = 64 << 20) -> None:
    # The processes append (O_APPEND), so truncating in place is safe; trace logs get big.
    with contextlib.suppress(OSError):
        if path.stat().st_size > limit:
            os.truncate(path, 0)


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for pkg in (
        "dialback",
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "pydantic",
        "sqlalchemy",
        "asyncpg",
        "redis",
        "orjson",
        "prometheus-fastapi-instrumentator",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)

    def first_line(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"
        return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr) else ""

    def token(text: str, pattern: str) -> str:
        m = re.search(pattern, text)
        return m.group(1) if m else text

    out["redis-server"] = token(first_line(["redis-server", "--version"]), r"v=(\S+)")
    pg = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    pg_version = first_line([str(pg[-1]), "--version"]) if pg else "not installed"
    out["postgresql"] = token(pg_version, r"\) (\S+)")
    wrk = first_line(["wrk", "--version"]) if shutil.which("wrk") else "not installed"
    out["wrk"] = token(wrk, r"^wrk (\S+)")
    return out


def _machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
    }


class PgStats:
    """A single long-lived session reading pg_stat_database (so it opens no sessions itself)."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(dsn))

    def sessions(self) -> int:
        """Sessions ever opened on the benchmark database (connections made by the pools)."""

        async def q() -> int:
            await self.conn.execute("SELECT pg_stat_clear_snapshot()")
            return int(
                await self.conn.fetchval(
                    "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                )
            )

        return self.loop.run_until_complete(q())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.conn.close())
        self.loop.close()


class Run:
    """One benchmark session."""

    def __init__(self, profile: Profile, workdir: Path) -> None:
        self.p = profile
        self.workdir = workdir
        self.servers = Servers()
        self.procs: list[ManagedProcess] = []
        self.log: Callable[[str], None] = lambda msg: print(
            f"[bench] {msg}", file=sys.stderr, flush=True
        )
        self.desired = utc_iso(time.time() + 86400)
        self.seed = int(time.time())
        self.details: dict[str, Any] = {}
        self.rss_idle = self.rss_load = self.rss_after_dispatch = 0.0

    def load(self, port: int, key: str, connections: int, seconds: float) -> LoadResult:
        """One bounded load run with the profile's load tool; refuses answers >= 400."""
        self.seed += 1
        fn = run_wrk if self.p.wrk else run_python_load
        res = fn(
            port,
            key,
            service=BENCH_SERVICE,
            desired=self.desired,
            connections=connections,
            seconds=seconds,
            seed=self.seed,
        )
        if res.status_errors:
            raise LoadError(f"{res.status_errors} of {res.requests} requests answered >= 400")
        return res

    def start(self, only_a: bool = False) -> None:
        """Servers, then dialback (which migrates), then the other processes (unless only_a)."""
        self.servers.start()
        env = self.servers.dialback_env("info")
        self.a = Dialback("dialback", env, self.workdir / "dialback.log")
        self.procs.append(self.a.spawn())
        self.a.wait_ready()
        self.pgstats = PgStats(self.servers.database_url)
        if only_a:
            return
        self.twin = Dialback(
            "dialback-twin", self.servers.dialback_env("info"), self.workdir / "dialback-twin.log"
        )
        self.b = Dialback(
            "dialback-no-observability",
            self.servers.dialback_env("error"),
            self.workdir / "dialback-noobs.log",
            observability=False,
        )
        floor_port = free_port()
        self.floor = ManagedProcess(
            "floor",
            [
                sys.executable,
                "-m",
                "bench.floor_app",
                "--port",
                str(floor_port),
                "--database-url",
                self.servers.database_url,
                "--redis-url",
                self.servers.redis.url,
            ],
            {},
            self.workdir / "floor.log",
            f"http://127.0.0.1:{floor_port}/ping",
        )
        self.floor_port = floor_port
        self.sim = ManagedProcess(
            "router-sim",
            [sys.executable, "-m", "dialback", "router-sim"],
            {"DIALBACK_ROUTING_REDIS_URL": self.servers.routing.url, "DIALBACK_LOG_LEVEL": "info"},
            self.workdir / "router-sim.log",
        )
        for proc in (self.twin, self.b, self.floor, self.sim):
            self.procs.append(proc.spawn())
        for proc in (self.twin, self.b, self.floor, self.sim):
            proc.wait_ready()

    def stop(self) -> None:
        if hasattr(self, "pgstats"):
            self.pgstats.close()
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        self.servers.stop()

    def setup(self) -> None:
        """The load tenant, and tenants x services with series (for /metrics)."""
        with self.a.admin() as admin:
            self.key = create_tenant(admin, BENCH_TENANT, [BENCH_SERVICE])
        started = time.monotonic()
        n = populate_tenants(
            self.a, self.a.public_port, self.p.tenants, self.p.services_per_tenant, self.desired
        )
        self.details["populate"] = {"creates": n, "seconds": round(time.monotonic() - started, 2)}
        time.sleep(0.5)
        self.rss_idle = rss_mb(self.a.pid)

    def create_rounds(self) -> dict[str, float]:
        """Alternating rounds of every create variant, plus the 8-connection latency run."""
        targets: dict[str, tuple[int, ManagedProcess, str | None]] = {
            "info": (self.a.public_port, self.a, "info"),
            "error": (self.a.public_port, self.a, "error"),
            "trace": (self.a.public_port, self.a, "trace"),
            "twin": (self.twin.public_port, self.twin, None),
            "noobs": (self.b.public_port, self.b, None),
            "floor": (self.floor_port, self.floor, None),
        }

        def run(variant: str, connections: int, seconds: float) -> LoadResult:
            port, proc, level = targets[variant]
            if level is not None:
                self.a.set_log_level(level)
            user0, sys0 = _cpu_times(proc.pid)
            sessions0 = self.pgstats.sessions()
            res = self.load(port, self.key, connections, seconds)
            user1, sys1 = _cpu_times(proc.pid)
            per = 1000 / max(1, res.requests)
            opened = self.pgstats.sessions() - sessions0
            rounds[variant].append(
                {
                    **res.as_dict(),
                    "process_cpu_ms_per_request": round((user1 - user0 + sys1 - sys0) * per, 4),
                    "process_sys_ms_per_request": round((sys1 - sys0) * per, 4),
                    "pg_sessions_opened_per_1k": round(1000 * opened / max(1, res.requests), 2),
                }
            )
            if proc is self.a:
                self.rss_load = max(self.rss_load, rss_mb(self.a.pid))
            _truncate_big(proc.log_path)
            return res

        self.rss_load = 0.0
        rounds: dict[str, list[dict[str, float]]] = {v: [] for v in (*CREATE_VARIANTS, "info_at_8")}
        for v in CREATE_VARIANTS:
            run(v, self.p.connections, self.p.warmup_seconds)
        for v in rounds:
            rounds[v].clear()
        variants = list(CREATE_VARIANTS)
        lag_before = dispatch.histogram(self.a.internal_url, LOOP_LAG)
        for r in range(self.p.rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            self.log(f"round {r + 1}/{self.p.rounds}: {', '.join(order)} + info at 8 connections")
            for v in order:
                run(v, self.p.connections, self.p.round_seconds)
            targets["info_at_8"] = targets["info"]
            run("info_at_8", 8, self.p.round_seconds)
        self.a.set_log_level("info")
        self.details["create_rounds"] = rounds
        lag_after = dispatch.histogram(self.a.internal_url, LOOP_LAG)
        # Event-loop lag of dialback A over all its rounds (bucket upper bounds: coarse).
        self.details["create_eventloop_lag_s"] = {
            f"p{int(q * 100)}_bucket": dispatch.histogram_quantile(lag_before, lag_after, q)
            for q in (0.5, 0.9, 0.99, 1.0)
        }

        def rps(v: str) -> list[float]:
            return [x["rps"] for x in rounds[v]]

        def ratio(num: str, den: str) -> float:
            return _median([a / b for a, b in zip(rps(num), rps(den), strict=True) if b > 0])

        return {
            "creates_per_s": _median(rps("info")),
            "create_p99_ms_at_8": _median([x["p99_ms"] for x in rounds["info_at_8"]]),
            "creates_per_s_at_8": _median(rps("info_at_8")),
            "create_p50_ms_at_8": _median([x["p50_ms"] for x in rounds["info_at_8"]]),
            "create_p99_ms_at_saturation": _median([x["p99_ms"] for x in rounds["info"]]),
            "floor_per_s": _median(rps("floor")),
            "create_vs_floor_ratio": ratio("info", "floor"),
            "observability_overhead_ratio": ratio("twin", "noobs"),
            "info_vs_noobs_ratio": ratio("info", "noobs"),
            "logs_only_overhead_ratio": ratio("info", "error"),
            "trace_vs_info_ratio": ratio("trace", "info"),
            "create_cpu_ms_per_request": _median(
                [x["process_cpu_ms_per_request"] for x in rounds["info"]]
            ),
            "floor_cpu_ms_per_request": _median(
                [x["process_cpu_ms_per_request"] for x in rounds["floor"]]
            ),
            "create_cpu_us": 1000
            * _median([x["process_cpu_ms_per_request"] for x in rounds["info"]]),
            "floor_cpu_us": 1000
            * _median([x["process_cpu_ms_per_request"] for x in rounds["floor"]]),
            "create_pg_sessions_per_1k": _median(
                [x["pg_sessions_opened_per_1k"] for x in rounds["info"]]
            ),
        }

    def metrics_render(self) -> dict[str, float]:
        """/metrics response time while the create load runs (8 connections), and idle."""
        url = f"{self.a.internal_url}/metrics"

        def scrape(client: httpx.Client, seconds: float) -> tuple[list[float], int]:
            times: list[float] = []
            size = 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                r = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
                size = len(r.content)
                time.sleep(0.05)
            return times, size

        with httpx.Client(timeout=30) as client:
            idle, _ = scrape(client, min(2.0, self.p.render_seconds))
            result: dict[str, Any] = {}

            def background() -> None:
                try:
                    result["load"] = self.load(
                        self.a.public_port, self.key, 8, self.p.render_seconds + 1.5
                    )
                except Exception as exc:  # reported below
                    result["error"] = exc

            th = threading.Thread(target=background)
            th.start()
            time.sleep(0.5)
            loaded, size = scrape(client, self.p.render_seconds)
            th.join()
        if "error" in result:
            raise result["error"]
        self.rss_load = max(self.rss_load, rss_mb(self.a.pid))
        loaded.sort()
        text = httpx.get(url, timeout=30).text
        self.details["metrics_render"] = {
            "scrapes_under_load": len(loaded),
            "load_rps_meanwhile": round(result["load"].rps, 1),
            "series": sum(1 for ln in text.splitlines() if ln and not ln.startswith("#")),
        }
        return {
            "metrics_render_ms": _median(loaded),
            "metrics_render_p99_ms": loaded[
                min(len(loaded) - 1, math.ceil(len(loaded) * 0.99) - 1)
            ],
            "metrics_render_idle_ms": _median(idle),
            "metrics_bytes": float(size),
            "metrics_series": float(self.details["metrics_render"]["series"]),
        }

    def instrumentation(self) -> dict[str, float]:
        """The in-process middleware comparison, in its own interpreter."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.instrumentation",
                "--calls",
                str(self.p.instr_calls),
                "--rounds",
                str(self.p.instr_rounds),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        )
        data = json.loads(out.stdout)
        self.details["instrumentation"] = data
        m, w = data["metrics_only"], data["with_info_log_line"]
        return {
            "instrumentation_vs_peer_ratio": data["instrumentation_vs_peer_ratio"],
            "instrumentation_with_log_vs_peer_ratio": data[
                "instrumentation_with_log_vs_peer_ratio"
            ],
            "instrumentation_dialback_us": m["dialback_cost_us"],
            "instrumentation_peer_us": m["peer_cost_us"],
            "instrumentation_dialback_with_log_us": w["dialback_cost_us"],
        }

    def dispatching(self, repeat: int = 1) -> dict[str, float]:
        """Backlog drain rate beside pgqueuer's, then lateness among many scheduled rows (only
        dialback A runs).

        Each of the ``repeat`` rounds drains the same number of due jobs through dialback, then
        through pgqueuer on the same PostgreSQL server; figures are the medians, and the ratio
        is the median of the rounds' ratios (like for like: one round's two drains see the same
        load from the rest of the machine).
        """
        for proc in self.procs:
            if proc is not self.a:
                proc.stop()
        target = dispatch.target(self.servers.database_url, BENCH_TENANT, BENCH_SERVICE)
        self.servers.pg.psql(f"CREATE DATABASE {peer.DATABASE}")
        peer_dsn = self.servers.pg.url(peer.DATABASE)
        drains: list[dict[str, float]] = []
        peers: list[dict[str, Any]] = []
        for i in range(repeat):
            n = self.p.dispatch_rows
            self.log(f"dispatch: {n} callbacks due at once, then pgqueuer ({i + 1}/{repeat})")
            cpu0 = sum(_cpu_times(self.a.pid))
            drains.append(dispatch.measure_dispatch(target, self.servers.routing.url, n))
            drains[-1]["dispatch_cpu_s"] = sum(_cpu_times(self.a.pid)) - cpu0
            peers.append(peer.measure(peer_dsn, n))
            drains[-1]["dispatch_vs_peer_ratio"] = (
                drains[-1]["dispatch_per_s"] / peers[-1]["peer_dispatch_per_s"]
            )
        self.details["dispatch_runs"] = drains
        self.details["peer_runs"] = peers
        out = {k: _median([d[k] for d in drains]) for k in drains[0]}
        out["peer_dispatch_per_s"] = _median([p["peer_dispatch_per_s"] for p in peers])
        self.log(
            f"lateness: {self.p.lateness_due} coming due over {self.p.lateness_seconds:g} s among "
            f"{self.p.lateness_rows} scheduled"
        )
        out.update(
            dispatch.measure_lateness(
                target,
                self.servers.routing.url,
                self.a.internal_url,
                scheduled_rows=self.p.lateness_rows,
                due_rows=self.p.lateness_due,
                seconds=self.p.lateness_seconds,
            )
        )
        self.rss_after_dispatch = rss_mb(self.a.pid)
        return out

    def history(self) -> dict[str, float]:
        """Goal 1 of issue #14: creates on the store as it is, then bulk-load history, then
        creates, purge and reads on it (dialback A with the same settings, restarted after the
        load and warmed up by one round, so the ratio is like for like)."""

        def create_round() -> float:
            return self.load(
                self.a.public_port, self.key, self.p.connections, self.p.round_seconds
            ).rps

        self.log("history: creates before the bulk load")
        before = [create_round() for _ in range(self.p.rounds)]
        rows = self.p.history_rows
        # While the secondary indexes are down, every dialback process's background loops
        # (claim, stats, retention) scan the table sequentially, each pass longer than the
        # last: the 2026-12-04 run's load fell from 28 k to 7 k rows/s. They stop meanwhile; A
        # starts again on the loaded store (the others are not used after this phase).
        self.log("history: dialback processes stopped while the history loads")
        for proc in self.procs:
            if isinstance(proc, Dialback):
                proc.stop()
        self.log(f"history: bulk-loading {rows} callbacks (90% completed over 90 days)")
        loaded = bulkload.load(
            self.servers.database_url,
            self.p.tenants,
            self.p.services_per_tenant,
            callbacks=rows,
            scheduled=rows // 10,
            # Secondary indexes built after the COPY, as a restore builds them: 4x faster.
            rebuild_indexes=True,
        )
        self.details["history"] = {"load": loaded.as_dict()}
        self.a.spawn().wait_ready(timeout=180)
        create_round()  # the restarted process's first round warms it up; not counted
        target = history.Target(
            self.servers.database_url,
            f"http://127.0.0.1:{self.a.public_port}",
            self.a.internal_url,
            ADMIN_TOKEN,
            self.key,
            BENCH_TENANT,
            BENCH_SERVICE,
            self.p.rounds,
            self.p.round_seconds,
        )

        self.log("history: creates alone and with the retention purge, then reads")
        self.details["history"]["rounds_before_load"] = before
        out = history.figures(target, create_round, _median(before), self.details["history"])
        out["history_load_s"] = loaded.seconds
        out["history_store_mb"] = (loaded.table_bytes + loaded.index_bytes) / 2**20
        return out


@contextlib.contextmanager
def _session(profile: Profile, keep_logs: bool) -> Iterator[Run]:
    """A ``Run`` in a fresh work directory; its processes stopped at the end, the directory
    removed unless the run failed (or ``keep_logs``)."""
    workdir = Path(tempfile.mkdtemp(prefix="dialback-bench-"))
    r = Run(profile, workdir)
    ok = False
    try:
        yield r
        ok = True
    finally:
        r.stop()
        if ok and not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print(f"[bench] failed; process logs kept in {workdir}", file=sys.stderr)


def _report(
    figures: dict[str, float],
    r: Run,
    started: float,
    machine: dict[str, Any],
    head: dict[str, Any],
    tail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON report: the figures, ``head``, the run's facts, ``tail``, then the details."""
    machine["loadavg_at_end"] = list(os.getloadavg())
    report: dict[str, Any] = {k: round(float(v), 4) for k, v in figures.items()}
    report.update(head)
    report.update(
        {
            "started_at": utc_iso(started),
            "duration_s": round(time.time() - started, 1),
            "machine": machine,
            "versions": _versions(),
        }
    )
    report.update(tail or {})
    report["details"] = r.details
    return report


def run(profile: Profile, keep_logs: bool = False, partial: Path | None = None) -> dict[str, Any]:
    """Run every measurement; return the report. After each phase the figures so far go to
    ``partial`` (when given): a run stopped late keeps what it measured."""
    started = time.time()
    machine = _machine()
    with _session(profile, keep_logs) as r:
        r.log(f"profile {profile.name}; logs in {r.workdir}")
        phases: dict[str, float] = {}
        r.details["phase_seconds"] = phases
        figures: dict[str, Any] = {}
        t = time.monotonic()

        def lap(name: str) -> None:
            nonlocal t
            phases[name] = round(time.monotonic() - t, 1)
            t = time.monotonic()
            if partial is not None:
                done = {"profile": profile.name, "phase_seconds": phases, "figures": figures}
                partial.write_text(json.dumps(done, indent=2) + "\n")

        r.start()
        lap("start")
        r.setup()
        lap("setup")
        r.log("create rounds")
        figures.update(r.create_rounds())
        lap("create_rounds")
        r.log("/metrics under load")
        figures.update(r.metrics_render())
        lap("metrics_render")
        r.log("instrumentation vs prometheus-fastapi-instrumentator (in-process)")
        figures.update(r.instrumentation())
        lap("instrumentation")
        figures.update(r.dispatching())
        lap("dispatch")
        figures.update(scale.measure(r))
        lap("scale")
        figures.update(r.history())
        lap("history")
        figures["rss_idle_mb"] = r.rss_idle
        figures["rss_load_mb"] = r.rss_load
        figures["rss_after_dispatch_mb"] = r.rss_after_dispatch
    return _report(
        figures,
        r,
        started,
        machine,
        {
            "quick": profile.name != "full",
            "profile": profile.name,
            "load_tool": "wrk -t1" if profile.wrk else "built-in Python generator (smoke)",
        },
        {
            "goals": GOALS,
            "settings": {
                "rounds": profile.rounds,
                "round_seconds": profile.round_seconds,
                "connections_at_saturation": profile.connections,
                "tenants_x_services": [profile.tenants, profile.services_per_tenant],
                "postgresql": "fsync=off (the test suite's server helper), max_connections=300, "
                + PG_OPTIONS,
                "create_body": "scheduled callback (desiredTime = now + 1 day), random +1415 number",
            },
        },
    )


def run_dispatch_only(profile: Profile, repeat: int, keep_logs: bool = False) -> dict[str, Any]:
    """Only the dispatch figures: servers, dialback A and the bench tenant, nothing else."""
    started = time.time()
    machine = _machine()
    with _session(profile, keep_logs) as r:
        r.log(f"profile {profile.name}, dispatch only; logs in {r.workdir}")
        r.start(only_a=True)
        with r.a.admin() as admin:
            create_tenant(admin, BENCH_TENANT, [BENCH_SERVICE])
        figures = r.dispatching(repeat)
    return _report(figures, r, started, machine, {"only": "dispatch", "profile": profile.name})


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m bench``."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="under 2 minutes; 30k due and 100k rows, not 100k/1M"
    )
    mode.add_argument(
        "--smoke", action="store_true", help="a few seconds, built-in load generator (no wrk)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"JSON report (default {RESULTS}; smoke: {SMOKE_RESULTS})",
    )
    p.add_argument("--write-docs", action="store_true", help=f"update the table in {DOCS}")
    p.add_argument("--keep-logs", action="store_true", help="keep the processes' log files")
    p.add_argument(
        "--only",
        choices=("dispatch",),
        default=None,
        help=f"only the dispatch figures (no wrk needed; default out {DISPATCH_RESULTS})",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="with --only dispatch: drains to take the median of"
    )
    args = p.parse_args(argv)
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.only == "dispatch":
        if args.write_docs:
            p.error("--write-docs needs the whole suite, not --only")
        out = args.out or DISPATCH_RESULTS
        report = run_dispatch_only(profile, max(1, args.repeat), keep_logs=args.keep_logs)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"[bench] wrote {out}", file=sys.stderr)
        for key in (
            "dispatch_per_s",
            "peer_dispatch_per_s",
            "dispatch_vs_peer_ratio",
            "dispatch_publish_rate_per_s",
            "dispatch_lateness_p99_s",
        ):
            print(f"{key:32} {report[key]}")
        return 0
    if profile.wrk:
        try:
            wrk_path()
        except LoadError as exc:
            print(str(exc), file=sys.stderr)
            return 2
    out = args.out or (SMOKE_RESULTS if args.smoke else RESULTS)
    # Beside the report, git-ignored: latest.json's is latest.partial.json.tmp.
    partial = out.with_name(f"{out.stem}.partial.json.tmp")
    report = run(profile, keep_logs=args.keep_logs, partial=partial)
    write_json(report, out)
    print(f"[bench] wrote {out}", file=sys.stderr)
    if args.write_docs:
        write_docs(report, DOCS)
        scale.write_docs(report, ROOT / "docs" / "scale.md")
        print(f"[bench] updated {DOCS} and docs/scale.md", file=sys.stderr)
    for key in GOALS:
        print(f"{key:32} {report[key]}")
    return 0

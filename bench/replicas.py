"""Two dialback replicas on one PostgreSQL against one: creates/s, dispatch/s, and what each
operation costs — the replicas' CPU, PostgreSQL's CPU (all its processes), WAL bytes and
database bytes per callback. On a small box the replicas share its cores with PostgreSQL,
Redis and wrk, so the CPU per operation is the figure that carries over (docs/scale.md).

Create rounds alternate (1 replica at 32 connections, 2 replicas at 16 connections each, at the
same time); the dispatch drain runs once with one replica's monitor, once with both.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Protocol

from bench import dispatch
from bench.load import LoadResult
from bench.stack import BENCH_SERVICE, BENCH_TENANT, Dialback, Servers

WAL_LSN = "SELECT pg_current_wal_lsn()::text"
DB_BYTES = "SELECT pg_database_size(current_database())"


class _Run(Protocol):
    servers: Servers
    a: Dialback
    key: str
    workdir: Path

    def load(self, port: int, key: str, connections: int, seconds: float) -> LoadResult: ...


def _cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (with its reaped children's when ``children``)."""
    import os

    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(parts[11]) + int(parts[12])
    if children:
        ticks += int(parts[13]) + int(parts[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def pg_cpu_s(servers: Servers) -> float:
    """CPU seconds of the PostgreSQL cluster: live processes plus the postmaster's reaped
    children (backends that ended)."""
    pids = servers.pg._processes()
    total = 0.0
    for i, pid in enumerate(pids):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += _cpu(pid, children=(i == 0))
    return total


def _wal_bytes(dsn: str, before: str) -> int:
    return int(dispatch.sql_value(dsn, f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{before}')"))


class _Costs:
    """CPU, WAL and database growth between ``start`` and ``stop``."""

    def __init__(self, run: _Run, procs: list[Dialback]) -> None:
        self.run, self.procs = run, procs

    def start(self) -> None:
        dsn = self.run.servers.database_url
        self.cpu0 = sum(_cpu(p.pid) for p in self.procs)
        self.pg0 = pg_cpu_s(self.run.servers)
        self.redis0 = self._redis()
        self.lsn0 = str(dispatch.sql_value(dsn, WAL_LSN))
        self.db0 = int(dispatch.sql_value(dsn, DB_BYTES))

    def _redis(self) -> float:
        # Both Redis servers: dialback's (throttle, idempotency) and the routing one (stream).
        servers = (self.run.servers.redis, self.run.servers.routing)
        return sum(_cpu(r.pid) for r in servers if r.pid is not None)

    def stop(self, ops: int) -> dict[str, float]:
        dsn = self.run.servers.database_url
        n = max(1, ops)
        return {
            "app_cpu_us": 1e6 * (sum(_cpu(p.pid) for p in self.procs) - self.cpu0) / n,
            "pg_cpu_us": 1e6 * (pg_cpu_s(self.run.servers) - self.pg0) / n,
            "redis_cpu_us": 1e6 * (self._redis() - self.redis0) / n,
            "wal_bytes": _wal_bytes(dsn, self.lsn0) / n,
            "db_bytes": (int(dispatch.sql_value(dsn, DB_BYTES)) - self.db0) / n,
            "ops": float(ops),
        }


def _creates(run: _Run, procs: list[Dialback], connections: int, seconds: float) -> dict:
    per = max(1, connections // len(procs))
    results: list[LoadResult] = []
    errors: list[BaseException] = []

    def one(p: Dialback) -> None:
        try:
            results.append(run.load(p.public_port, run.key, per, seconds))
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    costs = _Costs(run, procs)
    costs.start()
    threads = [threading.Thread(target=one, args=(p,)) for p in procs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    requests = sum(r.requests for r in results)
    out = costs.stop(requests)
    out["rps"] = sum(r.rps for r in results)
    return out


def _drain(run: _Run, procs: list[Dialback], rows: int) -> dict[str, float]:
    t = dispatch.target(run.servers.database_url, BENCH_TENANT, BENCH_SERVICE)
    costs = _Costs(run, procs)
    costs.start()
    res = dispatch.measure_dispatch(t, run.servers.routing.url, rows)
    return {**costs.stop(rows), "rps": res["dispatch_per_s"]}


def _median(values: list[float]) -> float:
    import statistics

    return float(statistics.median(values)) if values else float("nan")


def measure(
    run: _Run, *, rounds: int, seconds: float, connections: int, dispatch_rows: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """The replica figures and their details; starts the second replica and stops it."""
    second = Dialback(
        "dialback-replica-2", run.servers.dialback_env("info"), run.workdir / "replica-2.log"
    )
    one = _drain(run, [run.a], dispatch_rows)
    second.spawn()
    try:
        second.wait_ready()
        two = _drain(run, [run.a, second], dispatch_rows)
        rows: dict[str, list[dict[str, float]]] = {"1": [], "2": []}
        for r in range(rounds):
            order = ("1", "2") if r % 2 == 0 else ("2", "1")
            for v in order:
                procs = [run.a] if v == "1" else [run.a, second]
                rows[v].append(_creates(run, procs, connections, seconds))
    finally:
        second.stop()
    ratios = [b["rps"] / a["rps"] for a, b in zip(rows["1"], rows["2"], strict=True) if a["rps"]]

    def med(v: str, key: str) -> float:
        return _median([x[key] for x in rows[v]])

    figures = {
        "replicas_2_create_ratio": _median(ratios),
        "replicas_2_dispatch_ratio": two["rps"] / one["rps"] if one["rps"] else float("nan"),
        "replicas_1_creates_per_s": med("1", "rps"),
        "replicas_2_creates_per_s": med("2", "rps"),
        "replicas_1_dispatch_per_s": one["rps"],
        "replicas_2_dispatch_per_s": two["rps"],
        "create_app_cpu_us": med("1", "app_cpu_us"),
        "create_app_cpu_us_2_replicas": med("2", "app_cpu_us"),
        "create_pg_cpu_us": med("1", "pg_cpu_us"),
        "create_redis_cpu_us": med("1", "redis_cpu_us"),
        "create_wal_bytes": med("1", "wal_bytes"),
        "create_db_bytes": med("1", "db_bytes"),
        "dispatch_app_cpu_us": one["app_cpu_us"],
        "dispatch_pg_cpu_us": one["pg_cpu_us"],
        "dispatch_redis_cpu_us": one["redis_cpu_us"],
        "dispatch_wal_bytes": one["wal_bytes"],
    }
    return figures, {"create_rounds": rows, "dispatch": {"1": one, "2": two}}

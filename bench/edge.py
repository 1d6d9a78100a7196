"""The HTTP edge, server by server: ``python -m bench.edge [--rounds N] [--seconds S]``.

Serves dialback's real public app (one Container, PostgreSQL + two Redis, all throwaway, on
127.0.0.1) with each server a user would choose — uvicorn with its httptools and its h11
parser, granian (embedded, in dialback's event loop), hypercorn — and with dialback's own
listener (uvicorn httptools + ``web/edge.py``), one process per candidate, side by side. Each
candidate is given the same explicit limits wherever it has a setting for them (header cap
32 KiB, header-read timeout 2 s, keep-alive idle timeout 2 s, connection cap 100) and then:

- limits, one candidate after another, each bounded to seconds: 50 slowloris connections
  dribbling header bytes (how many are still open after 6 s), one idle keep-alive
  connection (when is it closed), 4 x 16 MB header blocks never terminated (the answer and
  the RSS growth), 150 idle connections and then a request (answered, refused, or left hanging);
- create throughput: wrk rounds of POST /engagement/v3/callbacks/create, alternating between
  the candidates (the order rotates each round); each ratio to uvicorn-httptools is the median
  of the per-round ratios (2 shared cores: ratios side by side, not absolute numbers).

Writes bench/results/edge.json and prints the table docs/performance.md ("The HTTP edge") holds.
``python -m bench.edge serve --server NAME`` is one candidate process (used by the run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.load import LoadError, run_wrk, wrk_path
from bench.stack import (
    BENCH_SERVICE,
    BENCH_TENANT,
    ROOT,
    Dialback,
    ManagedProcess,
    Servers,
    create_tenant,
    rss_mb,
)

RESULTS = ROOT / "bench" / "results" / "edge.json"
CANDIDATES = ("uvicorn-httptools", "uvicorn-h11", "granian", "hypercorn", "dialback-edge")
HEADER_CAP = 32 * 1024
HEADER_TIMEOUT = 2.0
KEEPALIVE = 2.0
CONN_CAP = 100
# The setting each candidate has for each limit (None: it has none). Measured below either way.
KNOBS: dict[str, dict[str, str | None]] = {
    "uvicorn-httptools": {
        "header cap": None,
        "header timeout": None,
        "keep-alive": "timeout_keep_alive",
        "connection cap": "limit_concurrency (503)",
    },
    "uvicorn-h11": {
        "header cap": "h11_max_incomplete_event_size",
        "header timeout": None,
        "keep-alive": "timeout_keep_alive",
        "connection cap": "limit_concurrency (503)",
    },
    "granian": {
        "header cap": "http1_settings.max_buffer_size",
        "header timeout": "http1_settings.header_read_timeout",
        "keep-alive": None,
        "connection cap": "backpressure (requests, not connections)",
    },
    "hypercorn": {
        "header cap": "h11_max_incomplete_size",
        "header timeout": None,
        "keep-alive": "keep_alive_timeout",
        "connection cap": None,
    },
    "dialback-edge": {
        "header cap": "DIALBACK_HTTP_MAX_HEADER_BYTES (431)",
        "header timeout": "DIALBACK_HTTP_HEADER_TIMEOUT_SECONDS (408)",
        "keep-alive": "DIALBACK_HTTP_KEEPALIVE_TIMEOUT_SECONDS",
        "connection cap": "DIALBACK_HTTP_MAX_CONNECTIONS (503)",
    },
}


# --- one candidate process ------------------------------------------------------------------


async def _serve_candidate(name: str, public_port: int) -> None:
    """dialback's runtime; its internal listener as usual; the public app on ``name``."""
    from dialback.app import create_internal_app, create_public_app
    from dialback.container import Container
    from dialback.server import _Server, listener_config
    from dialback.settings import Settings

    settings = Settings()
    rt = Container(settings)
    await rt.start()
    app = create_public_app(rt)
    internal = _Server(listener_config(create_internal_app(rt), settings.internal_port, settings))
    tasks = [asyncio.create_task(internal.serve())]
    if name == "dialback-edge":
        tasks.append(
            asyncio.create_task(_Server(listener_config(app, public_port, settings)).serve())
        )
    elif name.startswith("uvicorn-"):
        import uvicorn

        cfg: dict[str, Any] = {}
        if name == "uvicorn-h11":
            cfg["h11_max_incomplete_event_size"] = HEADER_CAP
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=public_port,
            http=name.removeprefix("uvicorn-"),
            timeout_keep_alive=int(KEEPALIVE),
            limit_concurrency=CONN_CAP,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            **cfg,
        )
        tasks.append(asyncio.create_task(_Server(config).serve()))
    elif name == "granian":
        from granian.constants import HTTPModes, Interfaces
        from granian.http import HTTP1Settings
        from granian.server.embed import Server as Granian

        granian = Granian(
            app,
            address="127.0.0.1",
            port=public_port,
            interface=Interfaces.ASGINL,
            http=HTTPModes.http1,
            websockets=False,
            backpressure=CONN_CAP,
            http1_settings=HTTP1Settings(
                header_read_timeout=int(HEADER_TIMEOUT * 1000), max_buffer_size=HEADER_CAP
            ),
            log_enabled=False,
        )
        tasks.append(asyncio.create_task(granian.serve()))
    elif name == "hypercorn":
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config as HypercornConfig

        hc = HypercornConfig()
        hc.bind = [f"127.0.0.1:{public_port}"]
        hc.h11_max_incomplete_size = HEADER_CAP
        hc.keep_alive_timeout = KEEPALIVE
        hc.accesslog = None
        hc.errorlog = None
        tasks.append(
            asyncio.create_task(hypercorn_serve(app, hc, mode="asgi"))  # type: ignore[arg-type]
        )
    else:
        raise SystemExit(f"unknown server {name!r}; one of {', '.join(CANDIDATES)}")
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await rt.stop()


def _candidate_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.edge serve")
    p.add_argument("--server", choices=CANDIDATES, required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    import uvloop

    uvloop.run(_serve_candidate(args.server, args.port))
    return 0


class Candidate(Dialback):
    """One candidate process: readiness on its internal port, the load on ``port``."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, env, log_path)
        self.port = self.public_port  # the candidate's listener takes dialback's public port
        self.cmd = [sys.executable, "-m", "bench.edge", "serve", "--server", name]
        self.cmd += ["--port", str(self.port)]

    def wait_port(self, timeout: float = 20.0) -> None:
        """Wait until the candidate's public port accepts connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name}: port {self.port} not open: {self.log_path}")


# --- the limit probes -----------------------------------------------------------------------


async def _closed_within(reader: asyncio.StreamReader, limit: float) -> tuple[float | None, bytes]:
    """Seconds until the server closes (None: still open after ``limit``) and what it sent."""
    started, got = time.monotonic(), b""
    try:
        while True:
            left = limit - (time.monotonic() - started)
            if left <= 0:
                return None, got
            chunk = await asyncio.wait_for(reader.read(65536), left)
            if not chunk:
                return time.monotonic() - started, got
            got += chunk
    except TimeoutError:
        return None, got
    except ConnectionError:
        return time.monotonic() - started, got


def _status(answer: bytes) -> str:
    return answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.") else "close"


async def slowloris(port: int, n: int = 50, window: float = 6.0) -> dict[str, Any]:
    """``n`` connections dribbling a header line every 0.2 s: how many are closed, and when."""

    async def one() -> tuple[float | None, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /engagement/v3/callbacks/create HTTP/1.1\r\nHost: x\r\n")

        async def dribble() -> None:
            for i in range(int(window / 0.2) + 5):
                await asyncio.sleep(0.2)
                with contextlib.suppress(ConnectionError):
                    writer.write(b"X-%d: y\r\n" % i)

        feeding = asyncio.create_task(dribble())
        result = await _closed_within(reader, window)
        feeding.cancel()
        writer.close()
        return result

    results = await asyncio.gather(*(one() for _ in range(n)))
    closed = [t for t, _ in results if t is not None]
    return {
        "open_after_s": window,
        "still_open": n - len(closed),
        "closed_median_s": round(statistics.median(closed), 2) if closed else None,
        "answer": sorted({_status(a) for t, a in results if t is not None}),
    }


async def idle_keepalive(port: int, window: float = 6.0) -> dict[str, Any]:
    """One request on a keep-alive connection, then silence: when does the server close it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /engagement/v3/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await asyncio.wait_for(reader.read(65536), 5)
    closed, _ = await _closed_within(reader, window)
    writer.close()
    return {
        "first_answer": _status(first),
        "closed_after_s": None if closed is None else round(closed, 2),
    }


async def big_headers(port: int, pid: int, n: int = 4, size: int = 16 << 20) -> dict[str, Any]:
    """``n`` header blocks of ``size`` bytes never terminated: the answer and the RSS growth."""
    before = rss_mb(pid)
    block = b"X-Big: " + b"a" * size
    seen: list[float] = []

    async def one() -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /engagement/v3/nothing HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        with contextlib.suppress(ConnectionError, TimeoutError):
            for i in range(0, len(block), 256 * 1024):
                writer.write(block[i : i + 256 * 1024])
                await asyncio.wait_for(writer.drain(), 3)
                sent = i
        closed, answer = await _closed_within(reader, 3)
        seen.append(rss_mb(pid))  # before this side closes: what the server holds for it
        writer.close()
        if closed is None:
            return f"open ({sent >> 20} MB taken)"
        return _status(answer)

    answers = await asyncio.gather(*(one() for _ in range(n)))
    peak = max(seen)
    return {"answers": sorted(set(answers)), "rss_growth_mb": round(peak - before, 1)}


async def connection_cap(port: int, n: int = CONN_CAP + 50) -> dict[str, Any]:
    """``n`` idle connections held open, then one request: its answer (or none in 3 s)."""
    held = []
    for _ in range(n):
        with contextlib.suppress(OSError):
            held.append(await asyncio.open_connection("127.0.0.1", port))
    await asyncio.sleep(0.2)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
        writer.write(b"GET /engagement/v3/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = _status(await asyncio.wait_for(reader.read(65536), 3) or b"")
        except (TimeoutError, ConnectionError):
            answer = "no answer in 3 s"
        writer.close()
    except (TimeoutError, OSError):
        answer = "not accepted in 3 s"
    for _r, w in held:
        w.close()
    return {"held": len(held), "next_request": answer}


# --- the run --------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (robust to other load, unlike throughput)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("uvicorn", "httptools", "h11", "granian", "hypercorn", "uvloop", "starlette"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


INSTALL = "pip install granian==2.8.9 hypercorn==0.18.0 (make bench-edge does it)"


def missing_candidates() -> list[str]:
    """Candidate servers not installed here (they are not dialback dependencies)."""
    return [m for m in ("granian", "hypercorn") if importlib.util.find_spec(m) is None]


def summarise(per_round: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per candidate: medians over the rounds, and per-round ratios to the other candidates."""

    def med(values: Any) -> float:
        return float(statistics.median(values))

    def cores(g: dict[str, Any]) -> float:
        return float(g["cpu_us_per_create"] * g["requests"] / 1e6 / g["seconds"])

    return {
        name: {
            "rps_median": round(med(g[name]["rps"] for g in per_round), 1),
            "p99_ms_median": round(med(g[name]["p99_ms"] for g in per_round), 1),
            "cpu_us_per_create_median": round(
                med(g[name]["cpu_us_per_create"] for g in per_round), 1
            ),
            # CPU seconds per second of load: on a busy box, how much of it the process got.
            "cores_used_median": round(med(cores(g[name]) for g in per_round), 2),
            "ratio_to_uvicorn_httptools": round(
                med(g[name]["rps"] / g["uvicorn-httptools"]["rps"] for g in per_round), 3
            ),
            "ratio_to_dialback_edge": round(
                med(g[name]["rps"] / g["dialback-edge"]["rps"] for g in per_round), 3
            ),
            "errors": sum(g[name]["status_errors"] + g[name]["socket_errors"] for g in per_round),
        }
        for name in per_round[0]
    }


def run(rounds: int, seconds: float, connections: int) -> dict[str, Any]:
    """Start everything, probe the limits, alternate the create rounds, stop everything."""
    log = lambda msg: print(f"[bench.edge] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    workdir = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    servers = Servers().start()
    procs: list[ManagedProcess] = []
    try:
        env = {
            **servers.dialback_env("error"),
            "DIALBACK_HTTP_MAX_HEADER_BYTES": str(HEADER_CAP),
            "DIALBACK_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "DIALBACK_HTTP_KEEPALIVE_TIMEOUT_SECONDS": str(KEEPALIVE),
            "DIALBACK_HTTP_MAX_CONNECTIONS": str(CONN_CAP),
        }
        first = Candidate(CANDIDATES[0], env, workdir / f"{CANDIDATES[0]}.log")
        procs.append(first.spawn())
        first.wait_ready()  # migrates the database before the others start
        cands = {first.name: first}
        for name in CANDIDATES[1:]:
            cands[name] = Candidate(name, env, workdir / f"{name}.log")
            procs.append(cands[name].spawn())
        for c in cands.values():
            c.wait_ready()
            c.wait_port()
        with first.admin() as admin:
            key = create_tenant(admin, BENCH_TENANT, [BENCH_SERVICE])
        limits: dict[str, dict[str, Any]] = {}
        for name, c in cands.items():
            log(f"limits: {name}")
            limits[name] = {
                "slowloris": asyncio.run(slowloris(c.port)),
                "idle_keepalive": asyncio.run(idle_keepalive(c.port)),
                "big_headers": asyncio.run(big_headers(c.port, c.pid)),
                "connection_cap": asyncio.run(connection_cap(c.port)),
                "rss_mb": round(rss_mb(c.pid), 1),
            }
            time.sleep(HEADER_TIMEOUT + 0.5)  # let what the probes left be closed
        desired = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 86400))
        seed = int(time.time())
        for c in cands.values():  # warm-up
            run_wrk(
                c.port,
                key,
                service=BENCH_SERVICE,
                desired=desired,
                connections=connections,
                seconds=1,
                seed=seed,
            )
        per_round: list[dict[str, Any]] = []
        order = list(cands)
        for r in range(rounds):
            got: dict[str, Any] = {}
            for name in order[r % len(order) :] + order[: r % len(order)]:
                seed += 1
                cpu0 = _cpu_seconds(cands[name].pid)
                res = run_wrk(
                    cands[name].port,
                    key,
                    service=BENCH_SERVICE,
                    desired=desired,
                    connections=connections,
                    seconds=seconds,
                    seed=seed,
                )
                got[name] = {
                    **res.as_dict(),
                    "cpu_us_per_create": round(
                        (_cpu_seconds(cands[name].pid) - cpu0) * 1e6 / max(1, res.requests), 1
                    ),
                }
                log(f"round {r + 1} {name}: {res.rps:.0f}/s p99 {res.p99_ms:.1f} ms")
            per_round.append(got)
        throughput = summarise(per_round)
        return {
            "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "loadavg_at_end": list(os.getloadavg())},
            "versions": _versions(),
            "limits_given": {
                "header_cap_bytes": HEADER_CAP,
                "header_timeout_s": HEADER_TIMEOUT,
                "keepalive_s": KEEPALIVE,
                "connection_cap": CONN_CAP,
            },
            "profile": {"rounds": rounds, "seconds": seconds, "connections": connections},
            "knobs": KNOBS,
            "limits": limits,
            "throughput": throughput,
            "rounds": per_round,
        }
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(Exception):
                proc.stop()
        servers.stop()


def table(report: dict[str, Any]) -> str:
    """The markdown table of docs/performance.md."""
    rows = [
        "| server | slowloris: 50 dribbling, open after 6 s | idle keep-alive closed after "
        "| 4 x 16 MB unterminated headers: answer, RSS growth | 150 idle + 1 request "
        "| CPU µs per create | cores used | creates/s | ratio to dialback-edge | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in CANDIDATES:
        lim, thr = report["limits"][name], report["throughput"][name]
        sl, ka, bh = lim["slowloris"], lim["idle_keepalive"], lim["big_headers"]
        closed = (
            f", closed at {sl['closed_median_s']} s" if sl["closed_median_s"] is not None else ""
        )
        ka_s = "open at 6 s" if ka["closed_after_s"] is None else f"{ka['closed_after_s']} s"
        rows.append(
            f"| {name} | {sl['still_open']}{closed} ({'/'.join(sl['answer']) or '-'}) | {ka_s} "
            f"| {'/'.join(bh['answers'])}, +{bh['rss_growth_mb']} MB "
            f"| {lim['connection_cap']['next_request']} | {thr['cpu_us_per_create_median']:.0f} "
            f"| {thr['cores_used_median']:.2f} | {thr['rps_median']:.0f} "
            f"| {thr['ratio_to_dialback_edge']:.2f} | {thr['p99_ms_median']:.0f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m bench.edge``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return _candidate_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m bench.edge", description=__doc__)
    p.add_argument("--rounds", type=int, default=3, help="alternating create rounds")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of one wrk round")
    p.add_argument("--connections", type=int, default=32, help="wrk connections")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"JSON report (default {RESULTS})")
    args = p.parse_args(argv)
    if missing := missing_candidates():
        print(f"{', '.join(missing)} not installed; {INSTALL}", file=sys.stderr)
        return 2
    try:
        wrk_path()
    except LoadError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    report = run(args.rounds, args.seconds, args.connections)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"[bench.edge] wrote {args.out}", file=sys.stderr)
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

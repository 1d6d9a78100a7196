"""Where the time goes: py-spy samples a dialback process under create load (or dispatching).

Run: ``python -m bench.profile [--seconds 15] [--what create|dispatch] [--out DIR]``. Needs
``py-spy`` (``.venv/bin/pip install py-spy``) and wrk for create load. Writes the collapsed
stacks (``DIR/<what>.folded``, for flame graph tools) and prints the functions with the most
samples, inclusive and self, with the share of samples of the whole process. For dispatch it
also prints PostgreSQL's statements by total time (``pg_stat_statements``, preloaded for it).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench import dispatch
from bench.runner import PROFILES, Run
from bench.stack import BENCH_SERVICE, BENCH_TENANT

DISPATCH_ROWS = 100_000
SKIP_FRAMES = ("<module>", "run (asyncio", "run_forever", "_run_once", "_run (asyncio")


def summarise(folded: Path, top: int = 30) -> str:
    """Top frames by inclusive and by self samples from py-spy's collapsed output."""
    inclusive: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        self_[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    out = [f"{total} samples", "", "inclusive:"]
    for frame, n in inclusive.most_common(top):
        if not frame.startswith(SKIP_FRAMES):
            out.append(f"  {100 * n / total:5.1f}%  {frame}")
    out += ["", "self:"]
    for frame, n in self_.most_common(top):
        out.append(f"  {100 * n / total:5.1f}%  {frame}")
    return "\n".join(out)


STATEMENTS = """
SELECT calls, rows, total_exec_time, shared_blks_hit, wal_records, wal_bytes,
    left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12
"""


async def _statements(dsn: str) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(STATEMENTS))
    finally:
        await conn.close()


def top_statements(dsn: str) -> str:
    """The statements that took PostgreSQL the longest, in total and per call."""
    out = ["   calls     rows   total ms  ms/call  hits/call  WAL B/call  statement"]
    for r in asyncio.run(_statements(dsn)):
        calls = max(1, r["calls"])
        out.append(
            f"{r['calls']:8} {r['rows']:8} {r['total_exec_time']:10.1f}"
            f" {r['total_exec_time'] / calls:8.2f} {r['shared_blks_hit'] / calls:10.0f}"
            f" {int(r['wal_bytes']) / calls:11.0f}  {r['query']}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Profile one dialback process; print the summary."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--what", choices=("create", "dispatch"), default="create")
    p.add_argument("--level", default="info", help="log level during create load")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "dialback-profile")
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    folded = args.out / f"{args.what}.folded"
    profile = PROFILES["quick"]
    run = Run(profile, Path(tempfile.mkdtemp(prefix="dialback-profile-")))
    if args.what == "dispatch":
        run.servers.pg.extra_options += (
            " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
        )
    try:
        run.start()
        run.setup()
        run.a.set_log_level(args.level)
        # Only dialback A runs (the twin's monitor would share the drain).
        for proc in run.procs:
            if proc is not run.a:
                proc.stop()
        record = [
            spy,
            "record",
            "--pid",
            str(run.a.pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--duration",
            str(int(args.seconds)),
            "--output",
            str(folded),
            "--nonblocking",
        ]
        if args.what == "create":
            run.load(run.a.public_port, run.key, 32, 1)  # warm up
            th = threading.Thread(
                target=run.load, args=(run.a.public_port, run.key, 32, args.seconds + 2)
            )
            th.start()
            time.sleep(1)
            subprocess.run(record, check=True, capture_output=True)
            th.join()
        else:
            dsn = run.servers.database_url
            target = dispatch.target(dsn, BENCH_TENANT, BENCH_SERVICE)
            dispatch.sql_value(dsn, "CREATE EXTENSION pg_stat_statements")
            dispatch.sql_value(dsn, "SELECT pg_stat_statements_reset()")
            spies: list[subprocess.Popen[bytes]] = []

            def spy() -> None:
                spies.append(
                    subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )

            # Sampling starts when the rows come due (not during their insert and the wait).
            timer = threading.Timer(dispatch.lead_seconds(DISPATCH_ROWS), spy)
            timer.start()
            print(dispatch.measure_dispatch(target, run.servers.routing.url, DISPATCH_ROWS))
            timer.join()
            spies[0].wait(timeout=args.seconds + 60)
            statements = top_statements(dsn)
    finally:
        run.stop()
    print(summarise(folded))
    if args.what == "dispatch":
        print("\nPostgreSQL statements by total time (pg_stat_statements):")
        print(statements)
    print(f"\ncollapsed stacks: {folded}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

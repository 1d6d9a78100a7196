"""The dispatch peer: pgqueuer draining the same number of due jobs on the same PostgreSQL.

pgqueuer (a Python PostgreSQL job queue; FOR UPDATE SKIP LOCKED dequeue, LISTEN/NOTIFY
wake-ups, a status log) is what a user who wants "a Postgres job queue" would pick. It is set up
the way its performance guide and its own benchmark tool recommend for throughput: the asyncpg
driver (its docs: ~1.7x psycopg), several QueueManagers each on its own connection (the tool's
``--dequeue`` workers), a larger ``batch_size`` for short jobs, no global concurrency cap, the
``balanced`` durability (the queue table logged, as dialback's callbacks table is; its log and
statistics tables unlogged), and a no-op async handler. It runs in its own database on the bench's
PostgreSQL server, in its own interpreter (uvloop), after dialback's drain in the same run.

Only the drain is timed: the jobs are enqueued (one multi-row INSERT per chunk) before the
workers start; the clock runs from the workers' start until every one has exited in ``drain``
mode (the queue empty and every job's completion written).

Run: ``python -m bench.peer --dsn postgresql://... --jobs 30000`` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

# The published configuration knobs (see the module docstring); fixed, not tuned per run.
WORKERS = 4
BATCH_SIZE = 100
DURABILITY = "balanced"
ENTRYPOINT = "noop"
ENQUEUE_CHUNK = 10_000
ROOT = Path(__file__).resolve().parent.parent
# Its own database on the bench's PostgreSQL server.
DATABASE = "pgqueuer_bench"


async def _drain(dsn: str, jobs: int, workers: int, batch_size: int) -> dict[str, float]:
    import asyncpg
    from pgqueuer import PgQueuer, Queries
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    admin = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(admin))
        if not await queries.schema_is_installed():
            await queries.install()
        await queries.clear_queue()
        await queries.clear_statistics_log()
        t0 = time.perf_counter()
        left = jobs
        while left > 0:
            k = min(ENQUEUE_CHUNK, left)
            await queries.enqueue([ENTRYPOINT] * k, [None] * k, [0] * k)
            left -= k
        enqueue_s = time.perf_counter() - t0
        conns = [await asyncpg.connect(dsn) for _ in range(workers)]
        done = 0
        pgqs = []
        for conn in conns:
            pgq = PgQueuer(AsyncpgDriver(conn))

            @pgq.entrypoint(ENTRYPOINT)
            async def noop(job: Job) -> None:
                nonlocal done
                done += 1

            pgqs.append(pgq)
        started = time.perf_counter()
        cpu0 = time.process_time()
        await asyncio.gather(
            *(pgq.run(batch_size=batch_size, mode=QueueExecutionMode.drain) for pgq in pgqs)
        )
        drain_s = time.perf_counter() - started
        drain_cpu_s = time.process_time() - cpu0
        remaining = sum(x.count for x in await queries.queue_size())
        for conn in conns:
            await conn.close()
    finally:
        await admin.close()
    if done < jobs or remaining:
        raise RuntimeError(f"pgqueuer: {done} of {jobs} handled, {remaining} left in the queue")
    return {
        "peer_dispatch_per_s": jobs / drain_s,
        "peer_drain_s": drain_s,
        "peer_enqueue_s": enqueue_s,
        "peer_jobs": float(jobs),
        "peer_workers": float(workers),
        "peer_batch_size": float(batch_size),
        "peer_drain_cpu_s": drain_cpu_s,
    }


def measure(dsn: str, jobs: int, workers: int = WORKERS, batch_size: int = BATCH_SIZE) -> dict:
    """pgqueuer's drain of ``jobs`` no-op jobs in a child interpreter, with its CPU seconds."""
    env = {**os.environ, "PGQUEUER_DURABILITY": DURABILITY}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.peer",
            "--dsn",
            dsn,
            "--jobs",
            str(jobs),
            "--workers",
            str(workers),
            "--batch-size",
            str(batch_size),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=120 + jobs / 500)
    if proc.returncode != 0:
        raise RuntimeError(f"bench.peer failed ({proc.returncode}): {err[-3000:]}")
    result: dict[str, Any] = json.loads(out)
    result["peer_version"] = metadata.version("pgqueuer")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m bench.peer``."""
    import uvloop

    p = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    p.add_argument("--dsn", required=True)
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--workers", type=int, default=WORKERS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    args = p.parse_args(argv)
    result = uvloop.run(_drain(args.dsn, args.jobs, args.workers, args.batch_size))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The fault campaign: replicas on one PostgreSQL, a recording routing engine, load, faults.

One engine for the bounded test (tests/e2e/test_chaos.py), ``make chaos`` (the long version)
and ``make soak``; the long runs write docs/reliability.md. Everything it starts is stopped by
PID, even when the campaign fails.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import itertools
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from testbed import metrics_parse
from testbed.servers import PostgresServer, RedisServer, _pg_bin, free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "chaos-admin-token"
DB_NAME = "dialback"
TENANT, POISON_TENANT, SERVICE = "chaos", "chaos-poison", "sales"
STREAM, GROUP, OUTCOMES = "NewCallbackStream", "routing-engine", "CallbackOutcomeStream"
GAUGES = ("GES_HEALTH", "POSTGRES_STATUS", "REDIS_CONNECTION", "ORS_REDIS_STATUS", "ALL_URS_DOWN")
OPEN_STATES = ("SCHEDULED", "QUEUED", "ROUTING", "PROCESSING")
TENANT_SETTINGS = {"throttle": {"maxCallbacks": 10_000_000, "windowSeconds": 60}}
SERVICE_CONFIG = {
    "businessHours": {"alwaysOpen": True},
    "throttle": {"maxOpenPerNumber": 1000, "maxPerNumberPerDay": 10_000},
    "retry": {"maxAttempts": 2, "delaySeconds": 1, "retryOn": ["no-answer"]},
}
# A booking as old data would hold it: an integer no JSON parser of the monitor can read.
POISON_USER_DATA = '{"legacy": ' + "9" * 400 + "}"
# Settings of every replica: health checks and leases short enough for a bounded campaign.
# The deadline settings are those of the open-state deadlines (issue 11 §2); unknown names
# are ignored by dialback, so the list can name them before the service has them.
REPLICA_ENV = {
    "DIALBACK_SIMULATOR": "off",
    "DIALBACK_LOG_LEVEL": "warn",
    "DIALBACK_LOG_FORMAT": "json",
    "DIALBACK_ADMIN_TOKENS": ADMIN_TOKEN,
    "DIALBACK_HEALTH_CHECK_MIN_SECONDS": "1",
    "DIALBACK_HEALTH_CHECK_MAX_SECONDS": "1.5",
    "DIALBACK_HEALTH_CHECK_TIMEOUT_SECONDS": "1",
    "DIALBACK_ROUTING_ENGINE_IDLE_SECONDS": "10",
    "DIALBACK_MONITOR_LEASE_SECONDS": "3",
    "DIALBACK_IMMEDIATE_WINDOW_SECONDS": "5",
    "DIALBACK_DB_POOL_SIZE": "8",
    "DIALBACK_QUEUED_REPUBLISH_SECONDS": "5",
    "DIALBACK_QUEUED_TIMEOUT_SECONDS": "60",
    "DIALBACK_ROUTING_TIMEOUT_SECONDS": "10",
    "DIALBACK_PROCESSING_TIMEOUT_SECONDS": "10",
    "DIALBACK_DEADLINE_SWEEP_SECONDS": "1",
}


def rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (from /proc); NaN when it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- processes

# Every replica this process made: whatever a failed or interrupted campaign left running is
# stopped by PID at exit (testbed.servers does the same for the servers).
_replicas: list[Replica] = []


@atexit.register
def _kill_all() -> None:
    for r in _replicas:
        with contextlib.suppress(Exception):
            r.kill()


class Replica:
    """One ``dialback serve`` process on fixed ports, restartable, stopped by PID."""

    def __init__(self, n: int, env: dict[str, str], logdir: Path) -> None:
        self.n = n
        self.name = f"r{n}"
        self.public_port, self.internal_port = free_port(), free_port()
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
        self.env = {
            **inherited,
            **env,
            "DIALBACK_HOST": "127.0.0.1",
            "DIALBACK_PUBLIC_PORT": str(self.public_port),
            "DIALBACK_INTERNAL_PORT": str(self.internal_port),
        }
        self.log_path = logdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.up = False
        self.starts = 0
        _replicas.append(self)

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def spawn(self) -> None:
        """Start the process without waiting for it."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dialback", "serve"],
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.starts += 1

    async def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until /health/ready answers 200; raise (with the log's tail) otherwise."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    tail = self.log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {tail}")
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(f"{self.internal_url}/health/ready")
                    if r.status_code == 200:
                        self.up = True
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready in {timeout}s: {self.log_path}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process and wait for it to end (SIGKILL after 15 s)."""
        self.up = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it hangs."""
        self.kill(signal.SIGTERM)


class Topology:
    """PostgreSQL, dialback's own Redis, the routing Redis and N replicas."""

    def __init__(self, replicas: int, workdir: Path, extra_env: dict[str, str]) -> None:
        self.workdir = workdir
        self.pg = PostgresServer()
        self.redis = RedisServer()
        self.routing = RedisServer()
        self.env = {
            **REPLICA_ENV,
            "DIALBACK_DATABASE_URL": self.pg.url(DB_NAME),
            "DIALBACK_REDIS_URL": self.redis.url,
            "DIALBACK_ROUTING_REDIS_URL": self.routing.url,
            **extra_env,
        }
        self.replicas = [Replica(i, self.env, workdir) for i in range(replicas)]

    @property
    def database_url(self) -> str:
        return self.pg.url(DB_NAME)

    async def start(self) -> None:
        """Start the servers, then the first replica (it migrates), then the others."""
        await asyncio.to_thread(self.pg.start)
        await asyncio.to_thread(self.pg.psql, f"CREATE DATABASE {DB_NAME}")
        await asyncio.to_thread(self.redis.start)
        await asyncio.to_thread(self.routing.start)
        first, *rest = self.replicas
        first.spawn()
        await first.wait_ready()
        for r in rest:
            r.spawn()
        await asyncio.gather(*(r.wait_ready() for r in rest))

    def up_replicas(self) -> list[Replica]:
        """The replicas currently serving."""
        return [r for r in self.replicas if r.up]

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            self.pg._as_owner([_pg_bin("pg_ctl"), "-D", str(self.pg.dir / "data"), *args]),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def pg_stop_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: the server dies without a checkpoint."""
        self._pg_ctl("-w", "stop", "-m", "immediate")

    def pg_start(self) -> None:
        """Start the stopped cluster again with the options it first had (crash recovery)."""
        self._pg_ctl(
            "-l",
            str(self.pg.dir / "log"),
            "-w",
            "-o",
            f"-p {self.pg.port} -k {self.pg.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=300 -c shared_buffers=128MB",
            "start",
        )

    def stop(self) -> None:
        """Stop every replica and server this topology started, by PID."""
        for r in self.replicas:
            with contextlib.suppress(Exception):
                r.stop()
        for server in (self.routing, self.redis, self.pg):
            with contextlib.suppress(Exception):
                server.discard()


def _check(r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 300:
        raise RuntimeError(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}")
    return dict(r.json().get("data") or {})


async def provision(replica: Replica) -> tuple[str, str]:
    """Create the load's tenant (API key returned) and the poison tenant (id returned)."""
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=replica.internal_url, headers=headers, timeout=30) as c:
        keys = []
        for name in (TENANT, POISON_TENANT):
            t = _check(
                await c.post("/admin/v1/tenants", json={"name": name, "settings": TENANT_SETTINGS})
            )
            _check(await c.put(f"/admin/v1/tenants/{name}/services/{SERVICE}", json=SERVICE_CONFIG))
            keys.append(
                (
                    t,
                    _check(
                        await c.post(f"/admin/v1/tenants/{name}/api-keys", json={"name": "chaos"})
                    ),
                )
            )
    return str(keys[0][1]["key"]), str(keys[1][0].get("id", ""))


# --------------------------------------------------------------------------- load


@dataclass
class Request:
    """One create the load sent."""

    at: float
    replica: str
    scheduled: bool
    status: int | None = None
    error: str | None = None
    latency: float = 0.0
    id: str | None = None
    message: str = ""


class Load:
    """Creates at a bounded rate spread over the serving replicas; records every answer."""

    def __init__(
        self,
        topo: Topology,
        key: str,
        rng: random.Random,
        *,
        scheduled_fraction: float,
        max_inflight: int = 64,
    ) -> None:
        self.topo = topo
        self.key = key
        self.rng = rng
        self.scheduled_fraction = scheduled_fraction
        self.max_inflight = max_inflight
        self.requests: list[Request] = []
        self.acked: dict[str, Request] = {}
        self.finished: list[Request] = []
        self.dropped = 0
        self.unserved = 0
        self._seq = 0
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=256))

    def _number(self) -> str:
        self._seq += 1
        i = self._seq
        return f"+1415{200 + (i // 10000) % 800:03d}{i % 10000:04d}"

    async def create(self, desired: float | None = None, replica: Replica | None = None) -> Request:
        """Send one create (immediate, or due at epoch ``desired``) and record its answer."""
        up = self.topo.up_replicas()
        target = replica or (self.rng.choice(up) if up else None)
        if target is None:  # every replica is down: a balancer would have nowhere to send it
            self.unserved += 1
            return Request(time.monotonic(), "-", desired is not None, error="no replica up")
        body: dict[str, Any] = {"serviceName": SERVICE, "phoneNumber": self._number()}
        if desired is not None:
            body["desiredTime"] = (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(desired))
                + f".{int(desired * 1000) % 1000:03d}Z"
            )
        req = Request(time.monotonic(), target.name, desired is not None)
        self.requests.append(req)
        try:
            r = await self._client.post(
                f"{target.public_url}/engagement/v3/callbacks/create",
                json=body,
                headers={"x-api-key": self.key},
            )
        except httpx.TimeoutException:
            req.error = "timeout"
        except httpx.HTTPError as exc:
            req.error = type(exc).__name__
        else:
            req.status = r.status_code
            if r.status_code in (200, 201):
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    req.id = str(r.json()["data"]["id"])
                    self.acked[req.id] = req
            else:
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    req.message = str(r.json()["status"]["message"])[:200]
        req.latency = time.monotonic() - req.at
        self.finished.append(req)
        return req

    async def _one(self) -> None:
        self._inflight += 1
        try:
            desired = None
            if self.rng.random() < self.scheduled_fraction:
                desired = time.time() + self.rng.uniform(8.0, 12.0)
            await self.create(desired)
        finally:
            self._inflight -= 1

    async def run(self, rate: float, stop: asyncio.Event) -> None:
        """Open loop at ``rate`` creates/s until ``stop``; a full window is counted, not sent."""
        interval = 1.0 / rate
        next_at = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now < next_at:
                await asyncio.sleep(next_at - now)
                continue
            next_at += interval
            if next_at < now - 1:  # fell behind (a stall): do not burst to catch up
                next_at = now
            if self._inflight >= self.max_inflight:
                self.dropped += 1
                continue
            task = asyncio.create_task(self._one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def closed_loop(self, workers: int, seconds: float) -> float:
        """Creates/s acknowledged by ``workers`` back-to-back clients for ``seconds``."""
        before = len(self.acked)
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                await self.create()

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return (len(self.acked) - before) / (time.monotonic() - started)

    async def close(self) -> None:
        """Wait for what is in flight, then close the client."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=15)
        await self._client.aclose()


# --------------------------------------------------------------------------- routing engine


@dataclass
class Delivery:
    """One dispatch entry the recording consumer read."""

    at: float
    entry: str
    republish: bool


class RecordingConsumer:
    """The routing engine of the campaign (docs/routing.md): reads the dispatch stream with a
    consumer group, records every (callback id, attempt) delivery, dials each once (a redelivery
    of the same attempt re-reports the outcome already decided), and heartbeats."""

    def __init__(self, url: str, rng: random.Random, *, no_answer_fraction: float) -> None:
        self.url = url
        self.rng = rng
        self.no_answer_fraction = no_answer_fraction
        self.name = "chaos-recorder"
        self.deliveries: dict[tuple[str, int], list[Delivery]] = {}
        self.decided: dict[tuple[str, int], str] = {}
        self.finished: set[tuple[str, int]] = set()
        self.cancels = 0
        self.outcomes_emitted = 0
        self.group_recreated = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._emits: set[asyncio.Task[None]] = set()
        self._r = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=3, socket_connect_timeout=1
        )

    def start(self) -> None:
        """Start reading and heartbeating."""
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._beat())]

    async def stop(self) -> None:
        """Stop and release the connection."""
        self._stop.set()
        for t in [*self._tasks, *self._emits]:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._emits, return_exceptions=True)
        await self._r.aclose()

    async def _beat(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                await self._r.hset(f"{STREAM}:heartbeats", self.name, f"{time.time():.3f}")
            await asyncio.sleep(1.0)

    async def _read(self) -> None:
        while not self._stop.is_set():
            try:
                resp: Any = await self._r.xreadgroup(
                    GROUP, self.name, {STREAM: ">"}, count=500, block=500
                )
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the routing Redis came back empty
                    with contextlib.suppress(ResponseError):
                        await self._r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
                        self.group_recreated += 1
                else:
                    await asyncio.sleep(0.2)
                continue
            except Exception:  # the routing Redis is down: try again
                await asyncio.sleep(0.2)
                continue
            ids = []
            for _stream, entries in resp or []:
                for entry_id, fields in entries:
                    ids.append(entry_id)
                    self._handle(entry_id, fields)
            if ids:
                with contextlib.suppress(Exception):
                    await self._r.xack(STREAM, GROUP, *ids)

    def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        if fields.get("type") == "cancel":
            self.cancels += 1
            return
        if fields.get("type") != "callback":
            return
        try:
            key = (fields["id"], int(fields["attempt"]))
        except (KeyError, ValueError):
            return
        republish = any(
            k.lower().startswith("republish") and v not in ("", "0") for k, v in fields.items()
        )
        seen = self.deliveries.setdefault(key, [])
        seen.append(Delivery(time.monotonic(), entry_id, republish))
        if key not in self.decided:
            retry = key[1] == 1 and self.rng.random() < self.no_answer_fraction
            self.decided[key] = "no-answer" if retry else "answered"
            events = ["ROUTING", "PROCESSING"] if self.decided[key] == "answered" else ["ROUTING"]
            delay = self.rng.uniform(0.05, 0.6)
        elif key in self.finished:
            # Finished, yet published again: the first report was lost; report the outcome
            # again and call nobody twice (docs/routing.md, the contract for a dialer).
            events, delay = [], 0.0
        else:
            return  # still held (its outcome is being reported): ignore the redelivery
        task = asyncio.create_task(self._report(key, [*events, "COMPLETED"], delay))
        self._emits.add(task)
        task.add_done_callback(self._emits.discard)

    async def _report(self, key: tuple[str, int], events: list[str], delay: float) -> None:
        await asyncio.sleep(delay)
        reason = self.decided[key]
        for event in events:
            why = reason if event == "COMPLETED" else ""
            fields = {
                "id": key[0],
                "attempt": str(key[1]),
                "event": event,
                "reason": why,
                "at": f"{time.time():.3f}",
            }
            while not self._stop.is_set():
                try:
                    await self._r.xadd(OUTCOMES, fields)  # type: ignore[arg-type]
                    self.outcomes_emitted += 1
                    break
                except Exception:  # routing Redis down: keep the outcome until it is back
                    await asyncio.sleep(0.3)
        self.finished.add(key)


# --------------------------------------------------------------------------- gauges


@dataclass
class Flip:
    """A health gauge of one replica changed value."""

    at: float
    replica: str
    gauge: str
    value: float | None


class GaugeSampler:
    """Scrapes every serving replica's /metrics and records each gauge change."""

    def __init__(self, topo: Topology, every: float = 1.0) -> None:
        self.topo = topo
        self.every = every
        self.flips: list[Flip] = []
        self.latest: dict[str, tuple[float, dict[str, float | None]]] = {}
        self._state: dict[tuple[str, str], float | None] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def scrape(self, client: httpx.AsyncClient, r: Replica) -> None:
        """Read one replica's gauges now."""
        try:
            resp = await client.get(f"{r.internal_url}/metrics")
            samples = metrics_parse.parse(resp.text)
        except (httpx.HTTPError, AssertionError):
            return
        now = time.monotonic()
        values = {g: metrics_parse.value(samples, g) for g in GAUGES}
        self.latest[r.name] = (now, values)
        for g, v in values.items():
            if self._state.get((r.name, g), 0.0) != v:
                self.flips.append(Flip(now, r.name, g, v))
            self._state[(r.name, g)] = v

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                await asyncio.gather(*(self.scrape(client, r) for r in self.topo.up_replicas()))
                await asyncio.sleep(self.every)

    def all_zero(self, since: float) -> bool:
        """Every replica serves, was scraped after ``since`` and shows every gauge at 0."""
        for r in self.topo.replicas:
            got = self.latest.get(r.name)
            if not r.up or got is None or got[0] < since:
                return False
            if any(v != 0 for v in got[1].values()):
                return False
        return True

    async def wait_all_zero(self, since: float, timeout: float) -> float | None:
        """The monotonic time all gauges were 0 after ``since``; None after ``timeout``."""
        deadline = since + timeout
        while time.monotonic() < deadline:
            if self.all_zero(since):
                return time.monotonic()
            await asyncio.sleep(0.2)
        return None


# --------------------------------------------------------------------------- campaign


@dataclass
class CampaignConfig:
    """What one campaign does (the test's defaults are small; ``make chaos`` raises them)."""

    replicas: int = 3
    rate: float = 20.0
    scheduled_fraction: float = 0.1
    no_answer_fraction: float = 0.1
    min_callbacks: int = 0
    warmup_seconds: float = 3.0
    kills: int = 2
    kill_all_every: int = 0
    kill_pause_seconds: float = 1.0
    pg_down_seconds: float = 3.0
    redis_down_seconds: float = 3.0
    routing_down_seconds: float = 3.0
    settle_seconds: float = 1.5
    recovery_timeout: float = 40.0
    drain_timeout: float = 60.0
    poison_lead_seconds: float = 10.0
    poison_companions: int = 10
    republish_gap_seconds: float = 1.0
    seed: int = 11
    # Which faults run, in this order (a subset narrows a failure down).
    faults: tuple[str, ...] = ("poison", "kill", "postgres", "redis", "routing")
    extra_env: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None
    log: Callable[[str], None] = print


@dataclass
class FaultRecord:
    """One injected fault and how the system came back."""

    name: str
    detail: str
    injected: float
    cleared: float | None = None
    recovered: float | None = None
    first_ack: float | None = None
    gauges_zero: float | None = None
    flips: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    codes: Counter[str] = field(default_factory=Counter)
    acked: int = 0
    restart_seconds: float | None = None


@dataclass
class CampaignResult:
    """Everything the campaign observed, and what it found wrong."""

    config: CampaignConfig
    started: float
    wall_seconds: float = 0.0
    faults: list[FaultRecord] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    messages: dict[str, Counter[str]] = field(default_factory=dict)
    requests: int = 0
    acked: int = 0
    dropped: int = 0
    unserved: int = 0
    stored_acked: int = 0
    stored_total: int = 0
    states: Counter[str] = field(default_factory=Counter)
    stuck: Counter[str] = field(default_factory=Counter)
    deliveries: int = 0
    distinct_deliveries: int = 0
    redeliveries: int = 0
    republishes: int = 0
    duplicates: int = 0
    missing_attempts: int = 0
    unknown_deliveries: int = 0
    kills: int = 0
    sigkills: int = 0
    drain_seconds: float | None = None
    poison: dict[str, Any] = field(default_factory=dict)
    own_redis_outage: tuple[int, int] = (0, 0)
    final_gauges: dict[str, dict[str, float | None]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _code(req: Request) -> str:
    if req.status is not None:
        return str(req.status)
    return f"conn:{req.error}" if req.error else "in flight"


class Campaign:
    """Runs one campaign against a fresh topology and checks what issue 11 promises."""

    def __init__(self, config: CampaignConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        workdir = config.workdir or Path(tempfile.mkdtemp(prefix="dialback-chaos-"))
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.topo = Topology(config.replicas, workdir, config.extra_env)
        self.t0 = time.monotonic()
        self.result = CampaignResult(config, time.time())
        self.poison_id = str(uuid.uuid4())
        self.companions: list[str] = []

    def log(self, msg: str) -> None:
        """One progress line, with the campaign's clock."""
        self.cfg.log(f"[chaos {time.monotonic() - self.t0:6.1f}s] {msg}")

    def rel(self, t: float | None) -> float | None:
        """Seconds since the campaign started."""
        return None if t is None else t - self.t0

    async def run(self) -> CampaignResult:
        """Start, load, inject every fault, drain, check; stop everything whatever happens."""
        try:
            await self._run()
        finally:
            await asyncio.to_thread(self.topo.stop)
        self.result.wall_seconds = time.monotonic() - self.t0
        return self.result

    async def _run(self) -> None:
        cfg = self.cfg
        await self.topo.start()
        key, self.poison_tenant = await provision(self.topo.replicas[0])
        self.consumer = RecordingConsumer(
            self.topo.routing.url, self.rng, no_answer_fraction=cfg.no_answer_fraction
        )
        self.consumer.start()
        self.sampler = GaugeSampler(self.topo)
        self.sampler.start()
        self.load = Load(self.topo, key, self.rng, scheduled_fraction=cfg.scheduled_fraction)
        stop_load = asyncio.Event()
        load_task = asyncio.create_task(self.load.run(cfg.rate, stop_load))
        self.log(
            f"topology up in {time.monotonic() - self.t0:.1f}s; load at {cfg.rate}/s; "
            f"replica logs in {self.workdir}"
        )
        try:
            await asyncio.sleep(cfg.warmup_seconds)
            if "poison" in cfg.faults:
                await self._poison()
            kill = 0
            while "kill" in cfg.faults and kill < cfg.kills:
                kill += 1
                every_all = cfg.kill_all_every and kill % cfg.kill_all_every == 0
                await self._kill(all_at_once=bool(every_all))
            steps = {
                "postgres": self._postgres,
                "redis": self._own_redis,
                "routing": self._routing_redis,
            }
            for name, fault in steps.items():
                if name in cfg.faults:
                    await fault()
            # Load on until the count is reached, bounded (a service that stopped acknowledging
            # must not hold the campaign for ever).
            bound = time.monotonic() + max(60.0, 3 * cfg.min_callbacks / cfg.rate)
            while len(self.load.acked) < cfg.min_callbacks and time.monotonic() < bound:
                await asyncio.sleep(1)
            if len(self.load.acked) < cfg.min_callbacks:
                self.result.failures.append(
                    f"only {len(self.load.acked):,} of the {cfg.min_callbacks:,} callbacks asked for were acknowledged"
                )
        finally:
            stop_load.set()
            await load_task
            await self.load.close()
        self.log(f"load stopped: {len(self.load.acked)} acknowledged; draining")
        await self._drain()
        await self._check()
        await self.sampler.stop()
        await self.consumer.stop()

    # ---- faults

    def _fault(self, name: str, detail: str) -> FaultRecord:
        rec = FaultRecord(name, detail, time.monotonic())
        self.result.faults.append(rec)
        self.log(f"fault {name}: {detail}")
        return rec

    async def _recover(self, rec: FaultRecord) -> None:
        rec.cleared = rec.cleared or time.monotonic()
        zero = await self.sampler.wait_all_zero(rec.cleared, self.cfg.recovery_timeout)
        rec.gauges_zero = zero
        # The first create acknowledged after the fault cleared (sent after it, answered).
        deadline = time.monotonic() + self.cfg.recovery_timeout
        while rec.first_ack is None and time.monotonic() < deadline:
            done = [q for q in self.load.acked.values() if q.at >= rec.cleared]
            if done:
                rec.first_ack = min(q.at + q.latency for q in done)
            else:
                await asyncio.sleep(0.1)
        rec.recovered = time.monotonic()
        await asyncio.sleep(self.cfg.settle_seconds)
        end = time.monotonic()
        window = [q for q in self.load.requests if rec.injected <= q.at < end]
        rec.codes = Counter(_code(q) for q in window)
        rec.acked = sum(1 for q in window if q.id)
        for g in GAUGES:
            ups = [
                f.at
                for f in self.sampler.flips
                if f.gauge == g and f.at >= rec.injected and f.value
            ]
            downs = [
                f.at
                for f in self.sampler.flips
                if f.gauge == g and ups and f.at > ups[0] and f.value == 0
            ]
            rec.flips[g] = (ups[0] if ups else None, downs[-1] if downs else None)
        self.log(
            f"  recovered: first ack +{_s(rec.first_ack, rec.cleared)}, gauges 0 +{_s(rec.gauges_zero, rec.cleared)}; {dict(rec.codes)}"
        )

    async def _kill(self, *, all_at_once: bool) -> None:
        victims = list(self.topo.replicas) if all_at_once else [self.rng.choice(self.topo.replicas)]
        rec = self._fault(
            "SIGKILL",
            ("all replicas" if all_at_once else f"replica {victims[0].name}")
            + ", restarted at once",
        )
        for v in victims:
            v.kill()
            self.result.sigkills += 1
        self.result.kills += 1
        for v in victims:
            v.spawn()
        await asyncio.gather(*(v.wait_ready() for v in victims))
        rec.cleared = time.monotonic()
        self.log(f"  restarted and ready in {rec.cleared - rec.injected:.1f}s")
        await self._recover(rec)
        await asyncio.sleep(self.cfg.kill_pause_seconds)

    async def _postgres(self) -> None:
        rec = self._fault(
            "PostgreSQL restart",
            f"pg_ctl stop -m immediate, down {self.cfg.pg_down_seconds:g}s, start",
        )
        await asyncio.to_thread(self.topo.pg_stop_immediate)
        await asyncio.sleep(self.cfg.pg_down_seconds)
        await asyncio.to_thread(self.topo.pg_start)
        rec.cleared = time.monotonic()
        await self._recover(rec)

    async def _own_redis(self) -> None:
        rec = self._fault(
            "dialback Redis restart", f"SIGKILL, down {self.cfg.redis_down_seconds:g}s, start empty"
        )
        await asyncio.to_thread(self.topo.redis.stop)
        down_from = time.monotonic()
        await asyncio.sleep(self.cfg.redis_down_seconds)
        down_to = time.monotonic()
        await asyncio.to_thread(self.topo.redis.start)
        rec.cleared = time.monotonic()
        during = [q for q in self.load.requests if down_from + 0.5 <= q.at <= down_to - 0.2]
        ok = sum(1 for q in during if q.id)
        self.result.own_redis_outage = (ok, len(during))
        if during and ok == 0:
            self.result.failures.append(
                f"booking stopped while dialback's own Redis was down: 0 of {len(during)} creates acknowledged ({dict(Counter(_code(q) for q in during))})"
            )
        await self._recover(rec)

    async def _routing_redis(self) -> None:
        rec = self._fault(
            "routing Redis restarted empty",
            f"SIGKILL, down {self.cfg.routing_down_seconds:g}s, start with no data",
        )
        await asyncio.to_thread(self.topo.routing.stop)
        await asyncio.sleep(self.cfg.routing_down_seconds)
        await asyncio.to_thread(self.topo.routing.start)
        rec.cleared = time.monotonic()
        await self._recover(rec)

    async def _poison(self) -> None:
        """Another tenant's unreadable row due at the same moment as bookings of the load's."""
        due = time.time() + self.cfg.poison_lead_seconds
        rec = self._fault(
            "poison booking",
            f"a row with a 400-digit userData integer, due with {self.cfg.poison_companions} bookings",
        )
        conn = await asyncpg.connect(self.topo.database_url)
        try:
            svc = await conn.fetchval(
                "SELECT id FROM services WHERE tenant_id = $1 AND name = $2",
                self.poison_tenant,
                SERVICE,
            )
            now = time.time()
            await conn.execute(
                """INSERT INTO callbacks (id, tenant_id, service_id, service_name, phone_number,
                   state, offer_type, desired_time, due_at, priority, language, user_data, params,
                   attempt, max_attempts, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, '+14155550100', 'SCHEDULED', 'SCHEDULED', $5, $5, 0,
                   'en-US', CAST($6 AS JSONB), CAST('{}' AS JSONB), 1, 1, $7, $7)""",
                self.poison_id,
                self.poison_tenant,
                svc,
                SERVICE,
                due,
                POISON_USER_DATA,
                now,
            )
        finally:
            await conn.close()
        answers = await asyncio.gather(
            *(self.load.create(due) for _ in range(self.cfg.poison_companions))
        )
        self.companions = [q.id for q in answers if q.id]
        rec.cleared = time.monotonic() + max(0.0, due - time.time())
        # Recovered when every companion due with the poison row is COMPLETED.
        deadline = rec.cleared + self.cfg.recovery_timeout
        while time.monotonic() < deadline:
            states = await self._states(self.companions)
            if states and all(s == "COMPLETED" for s in states.values()):
                rec.recovered = time.monotonic()
                break
            await asyncio.sleep(0.5)
        rec.first_ack = rec.recovered
        rec.gauges_zero = await self.sampler.wait_all_zero(rec.cleared, 5)
        window = [q for q in self.load.requests if rec.injected <= q.at < time.monotonic()]
        rec.codes = Counter(_code(q) for q in window)
        rec.acked = sum(1 for q in window if q.id)
        self.log(f"  poison companions completed: {rec.recovered is not None}")

    # ---- the end

    async def _states(self, ids: list[str]) -> dict[str, str]:
        conn = await asyncpg.connect(self.topo.database_url)
        try:
            rows = await conn.fetch(
                "SELECT id, state FROM callbacks WHERE id = ANY($1::text[])", ids
            )
        finally:
            await conn.close()
        return {r["id"]: r["state"] for r in rows}

    async def _drain(self) -> None:
        ids = list(self.load.acked)
        started = time.monotonic()
        deadline = started + self.cfg.drain_timeout
        while True:
            states = await self._states(ids)
            open_ = sum(1 for s in states.values() if s != "COMPLETED")
            if open_ == 0 and len(states) == len(ids):
                self.result.drain_seconds = time.monotonic() - started
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        self.log(f"drain: {self.result.drain_seconds}s")

    async def _check(self) -> None:
        res, cfg = self.result, self.cfg
        load, consumer = self.load, self.consumer
        res.requests, res.acked, res.dropped = len(load.requests), len(load.acked), load.dropped
        res.unserved = load.unserved
        res.codes = Counter(_code(q) for q in load.requests)
        for q in load.requests:
            if q.status is not None and q.status not in (200, 201):
                res.messages.setdefault(str(q.status), Counter())[q.message] += 1
        conn = await asyncpg.connect(self.topo.database_url)
        try:
            rows = await conn.fetch("SELECT id, state, attempt, tenant_id FROM callbacks")
            poison_row = await conn.fetchrow(
                "SELECT * FROM callbacks WHERE id = $1", self.poison_id
            )
            # Where the service records a set-aside row: a column or a table named for parking.
            park_tables = await conn.fetch(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND column_name = 'callback_id' AND table_name LIKE '%park%'"
            )
            parked_in = [
                t["table_name"]
                for t in park_tables
                if await conn.fetchval(
                    f'SELECT count(*) FROM "{t["table_name"]}" WHERE callback_id = $1',
                    self.poison_id,
                )
            ]
        finally:
            await conn.close()
        stored = {r["id"]: r for r in rows}
        res.stored_total = len(stored)
        res.states = Counter(r["state"] for r in rows)
        acked = set(load.acked)
        lost = acked - set(stored)
        res.stored_acked = len(acked) - len(lost)
        if lost:
            res.failures.append(
                f"acknowledged ≠ stored: {len(lost)} acknowledged callbacks are not in the store, e.g. {sorted(lost)[:3]}"
            )
        stuck = [i for i in acked if i in stored and stored[i]["state"] != "COMPLETED"]
        res.stuck = Counter(stored[i]["state"] for i in stuck)
        if stuck:
            res.failures.append(
                f"stuck: {len(stuck)} acknowledged callbacks not COMPLETED after a {cfg.drain_timeout:g}s drain ({dict(res.stuck)}); "
                f"by the last fault injected before their create: {dict(self._by_fault(stuck))}"
            )
        # Exactly once per attempt.
        res.deliveries = sum(len(v) for v in consumer.deliveries.values())
        res.distinct_deliveries = len(consumer.deliveries)
        for key, seen in consumer.deliveries.items():
            for prev, nxt in itertools.pairwise(seen):
                res.redeliveries += 1
                if nxt.republish or nxt.at - prev.at >= cfg.republish_gap_seconds:
                    res.republishes += 1
                else:
                    res.duplicates += 1
            if key[0] not in stored:
                res.unknown_deliveries += 1
        delivered = {k for k in consumer.deliveries}
        for i in acked:
            row = stored.get(i)
            if row is None:
                continue
            last = row["attempt"] if row["state"] == "COMPLETED" else row["attempt"] - 1
            res.missing_attempts += sum(1 for a in range(1, last + 1) if (i, a) not in delivered)
        if res.missing_attempts:
            res.failures.append(
                f"not dispatched: {res.missing_attempts} attempts of acknowledged callbacks never reached the routing engine"
            )
        if res.duplicates:
            res.failures.append(
                f"dispatched twice: {res.duplicates} (id, attempt) deliveries repeated within {cfg.republish_gap_seconds:g}s without a republish mark"
            )
        if res.unknown_deliveries:
            res.failures.append(
                f"{res.unknown_deliveries} dispatched callbacks are not in the store"
            )
        # No 500, no 5xx but 503.
        bad = {c: n for c, n in res.codes.items() if c.isdigit() and int(c) >= 500 and c != "503"}
        if bad:
            res.failures.append(
                f"server errors: {bad} (a dependency outage must answer 503, never 500)"
            )
        # The poison row: set aside, readable by the admin API, not blocking its batch.
        if "poison" in cfg.faults:
            await self._check_poison(poison_row, parked_in)
        # Every health gauge back to 0.
        since = time.monotonic()
        await self.sampler.wait_all_zero(since, 20)
        res.final_gauges = {name: vals for name, (_t, vals) in self.sampler.latest.items()}
        not_zero = {
            n: {g: v for g, v in vals.items() if v != 0} for n, vals in res.final_gauges.items()
        }
        not_zero = {n: v for n, v in not_zero.items() if v}
        if not_zero or len(res.final_gauges) < len(self.topo.replicas):
            res.failures.append(
                f"health gauges not back to 0 at the end: {not_zero or 'replica not scraped'}"
            )
        self.log(f"checked: {len(res.failures)} failures")

    def _by_fault(self, ids: list[str]) -> Counter[str]:
        """How many of ``ids`` were created after each fault (before any: 'before faults')."""
        out: Counter[str] = Counter()
        for i in ids:
            at = self.load.acked[i].at
            last = [f for f in self.result.faults if f.injected <= at]
            out[f"{len(last)}. {last[-1].name}" if last else "before faults"] += 1
        return out

    async def _check_poison(self, row: asyncpg.Record | None, parked_in: list[str]) -> None:
        res = self.result
        info: dict[str, Any] = {"id": self.poison_id}
        if row is None:
            info["state"] = "deleted"
        else:
            info["state"] = row["state"]
            info["reason"] = row["reason"]
            parked: dict[str, Any] = {
                k: v for k, v in dict(row).items() if "park" in k.lower() and v is not None
            }
            parked.update({t: "row" for t in parked_in})
            info["parked"] = parked
            set_aside = bool(parked) or row["state"] not in OPEN_STATES
            leased = row["lease_owner"] is not None and (row["lease_expires_at"] or 0) > time.time()
            if not set_aside:
                res.failures.append(
                    f"poison row not set aside: still {row['state']} (lease {'held' if leased else 'free'}), no parking recorded"
                )
        async with httpx.AsyncClient(timeout=10) as c:
            up = self.topo.up_replicas()
            r = await c.get(
                f"{up[0].internal_url}/admin/v1/callbacks/{self.poison_id}",
                headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        info["admin_status"] = r.status_code
        if r.status_code >= 500:
            res.failures.append(f"GET /admin/v1/callbacks/<poison> answered {r.status_code}")
        done = await self._states(self.companions)
        info["companions"] = (
            f"{sum(1 for s in done.values() if s == 'COMPLETED')}/{len(self.companions)} COMPLETED"
        )
        res.poison.update(info)


def _s(t: float | None, base: float | None) -> str:
    return "—" if t is None or base is None else f"{t - base:.1f}s"


# --------------------------------------------------------------------------- report


def _fmt(v: float | None, unit: str = "s") -> str:
    return "—" if v is None else f"{v:.1f}{unit}"


def render_result(res: CampaignResult) -> str:
    """The campaign's figures as Markdown: what was done, counts, recovery and gauge flips."""
    cfg = res.config
    t0 = res.faults[0].injected if res.faults else 0.0
    described = {
        "poison": f"one poison row due with {cfg.poison_companions} bookings",
        "kill": f"{res.kills} kill events ({res.sigkills} SIGKILLs)",
        "postgres": f"PostgreSQL down {cfg.pg_down_seconds:g} s",
        "redis": f"dialback's Redis down {cfg.redis_down_seconds:g} s",
        "routing": f"routing Redis down {cfg.routing_down_seconds:g} s, then empty",
    }
    done = [described[f] for f in cfg.faults if f in described]

    def rel(t: float | None, base: float | None) -> float | None:
        return None if t is None or base is None else t - base

    out = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(res.started))}, "
        f"{res.wall_seconds:.0f} s wall; parameters: {cfg.replicas} replicas, {cfg.rate:g} creates/s "
        f"({cfg.scheduled_fraction:.0%} scheduled 8-12 s ahead), "
        f"{cfg.no_answer_fraction:.0%} of first attempts unanswered (retried once), seed {cfg.seed}; "
        f"faults: {', '.join(done) or 'none'}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| creates sent | {res.requests:,} (not sent: {res.dropped:,} with the client window of 64 full, {res.unserved:,} while no replica was up) |",
        f"| acknowledged (200/201) | {res.acked:,} |",
        f"| acknowledged and stored | {res.stored_acked:,} (rows in store: {res.stored_total:,}) |",
        f"| answers by code | {', '.join(f'{c}: {n:,}' for c, n in sorted(res.codes.items()))} |",
        f"| dispatch deliveries | {res.deliveries:,} ({res.distinct_deliveries:,} distinct (id, attempt)) |",
        f"| redeliveries of an (id, attempt) | {res.redeliveries:,} ({res.republishes:,} republishes, deduped by the consumer; {res.duplicates:,} duplicates) |",
        f"| attempts never dispatched | {res.missing_attempts:,} |",
        f"| acknowledged not COMPLETED after the drain | {sum(res.stuck.values()):,} {dict(res.stuck) or ''} |",
        f"| drain time (load stopped → all COMPLETED) | {_fmt(res.drain_seconds)} |",
        f"| final states in the store | {', '.join(f'{s}: {n:,}' for s, n in sorted(res.states.items()))} |",
        "",
        "| # | fault | injected at | cleared after | recovered: first create after | all gauges 0 after | gauge flips (1 at / 0 at, after injection) | answers in the fault window |",
        "|---|---|---|---|---|---|---|---|",
    ]
    extra: list[str] = []
    if "poison" in cfg.faults:
        extra.append(
            f"| poison row | {res.poison.get('state')} (reason {res.poison.get('reason')}, parking {res.poison.get('parked') or '—'}); admin GET → {res.poison.get('admin_status')}; its batch companions {res.poison.get('companions')} |"
        )
    if "redis" in cfg.faults:
        extra.append(
            f"| creates during dialback's Redis outage | {res.own_redis_outage[0]:,} acknowledged of {res.own_redis_outage[1]:,} |"
        )
    at = next(i for i, line in enumerate(out) if line.startswith("| final states"))
    out[at + 1 : at + 1] = extra
    for n, f in enumerate(res.faults, 1):
        flips = "; ".join(
            f"{g} {_fmt(rel(up, f.injected))}/{_fmt(rel(down, f.injected))}"
            for g, (up, down) in f.flips.items()
            if up is not None
        )
        out.append(
            f"| {n} | {f.name}: {f.detail} | {_fmt(rel(f.injected, t0))} | {_fmt(rel(f.cleared, f.injected))} | "
            f"{_fmt(rel(f.first_ack, f.cleared))} | {_fmt(rel(f.gauges_zero, f.cleared))} | "
            f"{flips or 'none'} | {', '.join(f'{c}: {k}' for c, k in sorted(f.codes.items()))} |"
        )
    out += [
        "",
        "Recovery times count from the moment the fault was cleared (replica ready, server "
        "started). Answers other than 200/201, by message:",
        "",
    ]
    for code, msgs in sorted(res.messages.items()):
        top = "; ".join(f"{m or '(no message)'} x{k}" for m, k in msgs.most_common(4))
        out.append(f"- {code}: {top}")
    if res.failures:
        out += ["", "**Failed checks:**", "", *[f"- {x}" for x in res.failures]]
    else:
        out += [
            "",
            "All checks passed: acknowledged = stored, every attempt dispatched exactly once "
            "(redeliveries only as republishes), none stuck, no 500, every health gauge back to 0.",
        ]
    return "\n".join(out)


# --------------------------------------------------------------------------- soak


@dataclass
class SoakConfig:
    """A steady run: ``rate`` creates/s (None: half the maximum measured first)."""

    replicas: int = 3
    duration: float = 1800.0
    rate: float | None = None
    probe_seconds: float = 10.0
    probe_workers: int = 16
    sample_seconds: float = 10.0
    seed: int = 11
    workdir: Path | None = None
    log: Callable[[str], None] = print


@dataclass
class SoakSample:
    """One sampling window of the soak."""

    at: float
    rss: dict[str, float]
    p99_ms: float | None
    sent: int
    acked: int
    errors: int


@dataclass
class SoakResult:
    """The soak's measured maximum, rate and samples."""

    config: SoakConfig
    started: float
    max_rate: float | None = None
    rate: float = 0.0
    samples: list[SoakSample] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    wall_seconds: float = 0.0


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))]


async def soak(cfg: SoakConfig) -> SoakResult:
    """Measure (or take) the rate, then hold it for ``duration``, sampling RSS, p99, errors."""
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="dialback-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    topo = Topology(cfg.replicas, workdir, {})
    res = SoakResult(cfg, time.time())
    t0 = time.monotonic()
    try:
        await topo.start()
        key, _ = await provision(topo.replicas[0])
        consumer = RecordingConsumer(topo.routing.url, rng, no_answer_fraction=0.0)
        consumer.start()
        load = Load(topo, key, rng, scheduled_fraction=0.0, max_inflight=256)
        if cfg.rate is None:
            await load.closed_loop(cfg.probe_workers, 3.0)  # warm-up: pools, caches, plans
            res.max_rate = await load.closed_loop(cfg.probe_workers, cfg.probe_seconds)
            res.rate = res.max_rate / 2
            cfg.log(f"[soak] maximum {res.max_rate:.0f} creates/s; soaking at {res.rate:.0f}/s")
        else:
            res.rate = cfg.rate
        seen = len(load.finished)
        first_request = len(load.requests)
        stop = asyncio.Event()
        task = asyncio.create_task(load.run(res.rate, stop))
        started = time.monotonic()
        try:
            while time.monotonic() - started < cfg.duration:
                await asyncio.sleep(
                    min(cfg.sample_seconds, cfg.duration - (time.monotonic() - started))
                )
                window = load.finished[seen:]
                seen += len(window)
                sample = SoakSample(
                    time.monotonic() - started,
                    {r.name: rss_mib(r.pid) for r in topo.replicas if r.pid},
                    None if not window else (_p99([q.latency for q in window if q.id]) or 0) * 1000,
                    len(window),
                    sum(1 for q in window if q.id),
                    sum(1 for q in window if not q.id),
                )
                res.samples.append(sample)
                cfg.log(
                    f"[soak {sample.at:6.0f}s] sent {sample.sent} acked {sample.acked} errors "
                    f"{sample.errors} p99 {sample.p99_ms or 0:.1f} ms RSS "
                    + " ".join(f"{n}={v:.1f}" for n, v in sample.rss.items())
                )
        finally:
            stop.set()
            await task
            await load.close()
            await consumer.stop()
        res.codes = Counter(_code(q) for q in load.requests[first_request:])
    finally:
        await asyncio.to_thread(topo.stop)
    res.wall_seconds = time.monotonic() - t0
    return res


def plot_soak(res: SoakResult, path: Path) -> None:
    """A small PNG of each replica's RSS and the create p99 against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.at / 60 for s in res.samples]
    fig, (top, bottom, errs) = plt.subplots(
        3, 1, figsize=(7, 5), sharex=True, dpi=100, gridspec_kw={"height_ratios": [3, 3, 1.4]}
    )
    for name in sorted({n for s in res.samples for n in s.rss}):
        top.plot(minutes, [s.rss.get(name, float("nan")) for s in res.samples], label=name)
    top.set_ylabel("RSS (MiB)")
    top.legend(loc="best", fontsize=7, ncol=3)
    top.grid(alpha=0.3)
    bottom.plot(
        minutes,
        [s.p99_ms if s.p99_ms is not None else float("nan") for s in res.samples],
        color="tab:red",
    )
    bottom.set_ylabel("create p99 (ms)")
    bottom.grid(alpha=0.3)
    errs.bar(
        minutes,
        [s.errors for s in res.samples],
        width=0.6 * (minutes[1] - minutes[0]) if len(minutes) > 1 else 0.1,
        color="tab:gray",
    )
    errs.set_ylim(0, max([1, *(s.errors for s in res.samples)]) * 1.1)
    errs.set_ylabel("errors")
    errs.set_xlabel("minutes")
    errs.grid(alpha=0.3)
    fig.suptitle(f"soak: {res.rate:.0f} creates/s over {len(minutes)} samples", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render_soak(res: SoakResult, png: str) -> str:
    """The soak's figures as Markdown with the plot."""
    cfg = res.config
    samples = res.samples
    first, last = (samples[0], samples[-1]) if samples else (None, None)
    measured = (
        f"the maximum measured first ({cfg.probe_workers} closed-loop clients, {cfg.probe_seconds:g} s): "
        f"{res.max_rate:.0f} creates/s, so the soak ran at half, {res.rate:.0f}/s"
        if res.max_rate is not None
        else f"a given rate of {res.rate:g} creates/s"
    )
    out = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(res.started))}; parameters: "
        f"{cfg.replicas} replicas, duration {cfg.duration:g} s, samples every {cfg.sample_seconds:g} s, "
        f"{measured}.",
        "",
        f"![RSS and p99 against time]({png})",
        "",
    ]
    if first and last:
        growth = {n: last.rss.get(n, math.nan) - v for n, v in first.rss.items()}
        errors = sum(s.errors for s in samples)
        p99s = [s.p99_ms for s in samples if s.p99_ms is not None]
        out += [
            "| figure | value |",
            "|---|---|",
            f"| creates acknowledged | {sum(s.acked for s in samples):,} of {sum(s.sent for s in samples):,} |",
            f"| errors (non-2xx or no answer) | {errors:,} |",
            f"| answers by code | {', '.join(f'{c}: {n:,}' for c, n in sorted(res.codes.items()))} |",
            f"| RSS first → last sample | {', '.join(f'{n} {first.rss[n]:.1f} → {last.rss.get(n, math.nan):.1f} MiB ({growth[n]:+.1f})' for n in sorted(first.rss))} |",
            f"| create p99 per window, min / median / max | {min(p99s):.1f} / {statistics.median(p99s):.1f} / {max(p99s):.1f} ms |"
            if p99s
            else "| create p99 | — |",
            "",
            "| t (s) | "
            + " | ".join(f"RSS {n} (MiB)" for n in sorted(first.rss))
            + " | p99 (ms) | acked | errors |",
            "|---|" + "---|" * (len(first.rss) + 3),
        ]
        step = max(1, len(samples) // 20)
        for s in samples[::step]:
            out.append(
                f"| {s.at:.0f} | "
                + " | ".join(f"{s.rss.get(n, float('nan')):.1f}" for n in sorted(first.rss))
                + f" | {_fmt(s.p99_ms, '')} | {s.acked} | {s.errors} |"
            )
    return "\n".join(out)


# --------------------------------------------------------------------------- the page

PAGE_HEAD = """# Reliability: the fault campaign and the soak

Generated by `make chaos` and `make soak` (engine: `testbed/chaos.py`; the bounded version runs
in `make test` as `tests/e2e/test_chaos.py`). Each command rewrites its own section below.

**Topology.** Three `dialback serve` replicas on one PostgreSQL, dialback's own Redis and a
routing Redis, all real processes on 127.0.0.1. The routing engine is a recording consumer: it
reads `NewCallbackStream` with the consumer group `routing-engine` (docs/routing.md), records
every `(callback id, attempt)` delivery and dials each attempt once, as docs/routing.md asks of
a dialer (a redelivery of an attempt it still holds is ignored; of one it finished, its
`COMPLETED` is reported again; an attempt it never saw is a new dispatch), reports
`ROUTING`, `PROCESSING` and `COMPLETED` (10 % of first attempts `no-answer`, retried once), and
heartbeats. The load is an open loop of creates spread over the serving replicas, 10 % of them
scheduled 8-12 s ahead; every answer is recorded.

**Faults, in sequence, with recovery between:** one poison booking (a row of another tenant with
a 400-digit integer in `userData`, inserted directly in the store as old data would be, due at
the same moment as bookings of the load's tenant); SIGKILL of a random replica in a loop,
restarted at once (every few kills all replicas at once, in the long version); PostgreSQL
`pg_ctl stop -m immediate`, down, started again; dialback's own Redis killed, down, started empty;
the routing Redis killed, down, started with no data.

**Checks, exact:** acknowledged = stored (every 200/201 id is in the store); every attempt of
every acknowledged callback dispatched exactly once (distinct `(id, attempt)` deliveries; a
redelivery is accepted only as a republish — marked as one, or at least 1 s after the previous
delivery — and the consumer dedupes it); none stuck (every acknowledged callback COMPLETED within
the drain time; the poison row set aside and its batch companions completed); no 500 (no 5xx but
503) from any request; every health gauge (`GES_HEALTH`, `POSTGRES_STATUS`, `REDIS_CONNECTION`,
`ORS_REDIS_STATUS`, `ALL_URS_DOWN`) back to 0 on every replica at the end; bookings keep being
acknowledged while dialback's own Redis is down. Health gauges are scraped from each replica's
internal `/metrics` every second (health checks every 1-1.5 s in the campaign).
"""


SECTIONS = {"chaos": "## Fault campaign (`make chaos`)", "soak": "## Soak (`make soak`)"}


def write_section(page: Path, name: str, body: str) -> None:
    """Rewrite the reliability page: its head, section ``name`` new, the other section kept."""
    text = page.read_text() if page.exists() else ""
    blocks = {}
    for other in SECTIONS:
        begin, end = f"<!-- {other}:begin -->", f"<!-- {other}:end -->"
        if begin in text and end in text:
            blocks[other] = begin + text.split(begin, 1)[1].split(end, 1)[0] + end
    blocks[name] = f"<!-- {name}:begin -->\n{SECTIONS[name]}\n\n{body}\n<!-- {name}:end -->"
    page.write_text(PAGE_HEAD + "".join(f"\n{blocks[n]}\n" for n in SECTIONS if n in blocks))


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.chaos chaos|soak [options]``; 1 when a check failed."""
    ap = argparse.ArgumentParser(prog="python -m testbed.chaos")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("chaos", help="the fault campaign")
    c.add_argument("--replicas", type=int, default=3)
    c.add_argument("--kills", type=int, default=12)
    c.add_argument("--kill-all-every", type=int, default=4)
    c.add_argument(
        "--callbacks",
        type=int,
        default=10_000,
        help="keep loading until this many are acknowledged",
    )
    c.add_argument("--rate", type=float, default=50.0, help="creates/s")
    c.add_argument("--down", type=float, default=10.0, help="seconds each dependency stays down")
    c.add_argument("--drain", type=float, default=120.0)
    c.add_argument(
        "--faults",
        default="poison,kill,postgres,redis,routing",
        help="comma-separated subset of poison,kill,postgres,redis,routing",
    )
    s = sub.add_parser("soak", help="steady load, RSS and p99 over time")
    s.add_argument("--replicas", type=int, default=3)
    s.add_argument("--duration", type=float, default=1800.0, help="seconds")
    s.add_argument(
        "--rate", type=float, default=0.0, help="creates/s (0: half the measured maximum)"
    )
    s.add_argument("--sample", type=float, default=10.0, help="seconds per sample")
    for p in (c, s):
        p.add_argument(
            "--docs", type=Path, help="write the figures to this page (docs/reliability.md)"
        )
        p.add_argument("--workdir", type=Path)
        p.add_argument("--note", default="", help="a line put above the figures (what was run)")
    args = ap.parse_args(argv)
    if args.cmd == "chaos":
        cfg = CampaignConfig(
            replicas=args.replicas,
            rate=args.rate,
            min_callbacks=args.callbacks,
            kills=args.kills,
            kill_all_every=args.kill_all_every,
            pg_down_seconds=args.down,
            redis_down_seconds=args.down,
            routing_down_seconds=args.down,
            drain_timeout=args.drain,
            poison_companions=50,
            faults=tuple(x.strip() for x in args.faults.split(",") if x.strip()),
            workdir=args.workdir,
        )
        res = asyncio.run(Campaign(cfg).run())
        text = (f"*{args.note}*\n\n" if args.note else "") + render_result(res)
        print(text)
        if args.docs:
            write_section(args.docs, "chaos", text)
        return 1 if res.failures else 0
    scfg = SoakConfig(
        replicas=args.replicas,
        duration=args.duration,
        rate=args.rate or None,
        sample_seconds=args.sample,
        workdir=args.workdir,
    )
    sres = asyncio.run(soak(scfg))
    png = "reliability-soak.png"
    if args.docs:
        plot_soak(sres, args.docs.parent / png)
        note = f"*{args.note}*\n\n" if args.note else ""
        write_section(args.docs, "soak", note + render_soak(sres, png))
    print(render_soak(sres, png))
    return 0


if __name__ == "__main__":
    sys.exit(main())

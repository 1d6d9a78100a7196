"""The benchmark's servers and processes: PostgreSQL, two Redis, dialback variants, the floor
app and the routing simulator, all on free 127.0.0.1 ports, each stopped by its PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
from testbed.servers import PostgresServer, RedisServer, free_port

ADMIN_TOKEN = "bench-admin-token"
DB_NAME = "dialback_bench"
BENCH_TENANT = "bench"
BENCH_SERVICE = "sales"
# The highest limits the admin API accepts: the load must never be throttled.
TENANT_SETTINGS = {"throttle": {"maxCallbacks": 10_000_000, "windowSeconds": 60}}
SERVICE_CONFIG = {
    "businessHours": {"alwaysOpen": True},
    "throttle": {"maxOpenPerNumber": 1000, "maxPerNumberPerDay": 10_000},
}
ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class ManagedProcess:
    """A subprocess with its log file, readiness check, and stop by PID."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        log_path: Path,
        ready_url: str | None = None,
    ) -> None:
        self.name = name
        self.cmd = cmd
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
        self.env = {**inherited, **env}
        self.log_path = log_path
        self.ready_url = ready_url
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> ManagedProcess:
        """Start the process without waiting for it."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> ManagedProcess:
        """Wait until the ready URL answers 200 (or, without one, that it stays up 0.3 s)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        if self.ready_url is None:
            time.sleep(0.3)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {tail}")
            if self.ready_url is None:
                return self
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.ready_url, timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} not ready in {timeout}s: {self.log_path}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end within 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


class Dialback(ManagedProcess):
    """A dialback process (real ``dialback serve``, or the bench variant without observability)."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_path: Path,
        *,
        observability: bool = True,
    ) -> None:
        self.public_port = free_port()
        self.internal_port = free_port()
        module = ["dialback", "serve"] if observability else ["bench.dialback_variant"]
        super().__init__(
            name,
            [sys.executable, "-m", *module],
            {
                **env,
                "DIALBACK_HOST": "127.0.0.1",
                "DIALBACK_PUBLIC_PORT": str(self.public_port),
                "DIALBACK_INTERNAL_PORT": str(self.internal_port),
            },
            log_path,
            f"http://127.0.0.1:{self.internal_port}/health/ready",
        )

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}"

    def admin(self) -> httpx.Client:
        """An admin API client for this process."""
        return httpx.Client(
            base_url=self.internal_url,
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )

    def set_log_level(self, level: str) -> None:
        """Change the log level at run time (PUT /admin/v1/logging)."""
        with self.admin() as c:
            r = c.put("/admin/v1/logging", json={"level": level})
            r.raise_for_status()


# PostgreSQL sized for the 10 M-callback store of the history figures (about 14 GB on disk)
# rather than at the server's 128 MB default; every process of a run, the floor's included,
# shares it. The WAL settings keep checkpoints out of the bulk load (docs/performance.md).
PG_OPTIONS = "-c shared_buffers=2GB -c max_wal_size=8GB -c checkpoint_timeout=30min"


class Servers:
    """PostgreSQL + dialback's Redis + the routing Redis for one benchmark session."""

    def __init__(self) -> None:
        self.pg = PostgresServer(extra_options=PG_OPTIONS)
        self.redis = RedisServer()
        self.routing = RedisServer()

    def start(self) -> Servers:
        self.pg.start()
        self.redis.start()
        self.routing.start()
        self.pg.psql(f"CREATE DATABASE {DB_NAME}")
        return self

    @property
    def database_url(self) -> str:
        return self.pg.url(DB_NAME)

    def dialback_env(self, log_level: str = "info") -> dict[str, str]:
        """Settings of every benchmarked dialback process (docs/configuration.md)."""
        return {
            "DIALBACK_DATABASE_URL": self.database_url,
            "DIALBACK_REDIS_URL": self.redis.url,
            "DIALBACK_ROUTING_REDIS_URL": self.routing.url,
            "DIALBACK_ADMIN_TOKENS": ADMIN_TOKEN,
            "DIALBACK_LOG_LEVEL": log_level,
            "DIALBACK_LOG_FORMAT": "json",
            "DIALBACK_SIMULATOR": "off",
            # No routing engine takes the dispatch phase's callbacks: left at a minute, the
            # deadline sweep would republish them into the later measurements.
            "DIALBACK_QUEUED_REPUBLISH_SECONDS": "3600",
            # The loaded history spans 90 days: at the default 30 the process's own sweeper
            # would purge it while it loads and is measured. The bench's Purger runs the
            # purge where it is measured (purge_overhead_ratio); the sweeper finds nothing.
            "DIALBACK_RETENTION_CALLBACK_DAYS": "3650",
        }

    def stop(self) -> None:
        for server in (self.routing, self.redis):
            with contextlib.suppress(Exception):
                server.discard()
        with contextlib.suppress(Exception):
            self.pg.discard()


def _check(r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 300:
        raise RuntimeError(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}")
    return dict(r.json().get("data") or {})


def create_tenant(admin: httpx.Client, tenant: str, services: list[str]) -> str:
    """Create a tenant with unthrottled always-open services; return a new API key."""
    _check(admin.post("/admin/v1/tenants", json={"name": tenant, "settings": TENANT_SETTINGS}))
    for svc in services:
        _check(admin.put(f"/admin/v1/tenants/{tenant}/services/{svc}", json=SERVICE_CONFIG))
    return str(
        _check(admin.post(f"/admin/v1/tenants/{tenant}/api-keys", json={"name": "bench"}))["key"]
    )


def populate_tenants(
    db: Dialback, public_port: int, tenants: int, services: int, desired: str, prefix: str = "t"
) -> int:
    """``tenants`` x ``services`` with series: each tenant, service and key, one create each."""
    keys: dict[str, str] = {}
    with db.admin() as admin:
        for t in range(tenants):
            name = f"{prefix}{t:03d}"
            keys[name] = create_tenant(admin, name, [f"s{s}" for s in range(services)])

    async def book() -> int:
        sem = asyncio.Semaphore(8)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{public_port}", timeout=30) as c:

            async def one(tenant: str, svc: str, i: int) -> int:
                async with sem:
                    r = await c.post(
                        "/engagement/v3/callbacks/create",
                        headers={"x-api-key": keys[tenant]},
                        json={
                            "serviceName": svc,
                            "phoneNumber": f"+1415{200 + i % 800:03d}{i % 10000:04d}",
                            "desiredTime": desired,
                        },
                    )
                    return r.status_code

            jobs = [
                one(t, f"s{s}", n)
                for n, (t, s) in enumerate((t, s) for t in keys for s in range(services))
            ]
            codes = await asyncio.gather(*jobs)
        bad = [c for c in codes if c != 200]
        if bad:
            raise RuntimeError(f"populating tenants: {len(bad)} creates failed, e.g. {bad[0]}")
        return len(codes)

    return asyncio.run(book())

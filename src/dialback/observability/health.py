"""The dependency health checker: one background task per process.

Every 15-20 s (jittered, configurable) it checks each configured dependency with its own
timeout, sets the GES health gauges (1 = down, 0 = up) and GES_HEALTH, records when each
check finished and how long it took, and keeps the state that readiness reads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa

if TYPE_CHECKING:
    from dialback.runtime import Runtime

log = logging.getLogger("dialback.health")


@dataclass
class Dependency:
    """One thing dialback depends on, and how to check it."""

    name: str
    gauge: str | None
    check: Callable[[], Awaitable[None]]
    required: bool
    in_ges_health: bool
    up: bool | None = None
    last_check: float = 0.0
    duration: float = 0.0
    error: str = ""


class DependencyDown(Exception):
    """A check found the dependency unusable."""


def is_dependency_error(exc: BaseException) -> bool:
    """Whether ``exc`` means a dependency is unreachable (not a bug in dialback)."""
    import redis.exceptions as redis_exc
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(
        exc,
        (
            OSError,
            TimeoutError,
            redis_exc.ConnectionError,
            redis_exc.TimeoutError,
            OperationalError,
            InterfaceError,
        ),
    ):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return type(exc).__module__.startswith("asyncpg") and "Connection" in type(exc).__name__


def is_dns_failure(exc: BaseException) -> bool:
    """Whether a host-name lookup failure is behind ``exc``."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, socket.gaierror):
            return True
        text = str(cur)
        if (
            "Name or service not known" in text
            or "nodename nor servname" in text
            or "Temporary failure in name resolution" in text
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


@dataclass
class HealthChecker:
    """Checks dependencies periodically and publishes their state."""

    rt: Runtime
    dependencies: list[Dependency] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _http: httpx.AsyncClient | None = None

    def __post_init__(self) -> None:
        rt = self.rt
        s = rt.settings
        deps = self.dependencies
        if rt.engine.dialect.name == "postgresql":
            deps.append(Dependency("postgres", "POSTGRES_STATUS", self._check_db, True, True))
        else:
            deps.append(Dependency("database", None, self._check_db, True, False))
        if s.redis_url:
            deps.append(Dependency("redis", "REDIS_CONNECTION", rt.counters.ping, True, False))
        if s.routing_redis_url:
            deps.append(
                Dependency("routing_redis", "ORS_REDIS_STATUS", rt.transport.ping, True, True)
            )
        if s.routing_redis_url or rt.simulator is not None:
            deps.append(
                Dependency(
                    "routing_engine", "ALL_URS_DOWN", self._check_routing_engine, False, False
                )
            )
        for name, gauge, url in (
            ("gws_auth", "GWS_AUTH_STATUS", s.auth_health_url),
            ("gws_env", "GWS_ENV_STATUS", s.tenant_directory_health_url),
            ("gws_config", "GWS_CONFIG_STATUS", s.config_source_health_url),
        ):
            if url:
                deps.append(Dependency(name, gauge, self._http_check(url), True, True))

    def _http_check(self, url: str) -> Callable[[], Awaitable[None]]:
        async def check() -> None:
            if self._http is None:
                self._http = httpx.AsyncClient(
                    timeout=self.rt.settings.health_check_timeout_seconds
                )
            try:
                resp = await self._http.get(url)
            except httpx.HTTPError as exc:
                self.rt.metrics.alarm("GWS_SERVER_ERROR")
                raise DependencyDown(f"{type(exc).__name__}: {exc}") from exc
            if resp.status_code in (401, 403):
                self.rt.metrics.alarm("GWS_INCORRECT_CLIENT_CREDENTIALS")
                raise DependencyDown(f"credentials rejected ({resp.status_code})")
            if resp.status_code >= 500:
                self.rt.metrics.alarm("GWS_SERVER_ERROR")
                raise DependencyDown(f"server error ({resp.status_code})")
            if resp.status_code >= 400:
                raise DependencyDown(f"unexpected status {resp.status_code}")

        return check

    async def _check_db(self) -> None:
        async with self.rt.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def _check_routing_engine(self) -> None:
        window = int(self.rt.settings.routing_engine_idle_seconds * 1000)
        if await self.rt.transport.active_consumers(window) == 0:
            raise DependencyDown(f"no routing-engine consumer active within {window} ms")

    async def check_all(self) -> None:
        """Check every dependency now, concurrently, and publish the results."""
        await asyncio.gather(*(self._check_one(d) for d in self.dependencies))
        metrics = self.rt.metrics
        down = sum(1 for d in self.dependencies if d.in_ges_health and d.up is False)
        metrics.f["GES_HEALTH"].set((), down)

    async def _check_one(self, dep: Dependency) -> None:
        timeout = self.rt.settings.health_check_timeout_seconds
        started = time.monotonic()
        try:
            await asyncio.wait_for(dep.check(), timeout=timeout)
            ok, error = True, ""
        except TimeoutError:
            ok, error = False, f"timed out after {timeout}s"
        except Exception as exc:  # every failure of a dependency means "down"
            ok, error = False, str(exc)[:300] or type(exc).__name__
            if is_dns_failure(exc):
                self.rt.metrics.alarm("DNS_FAILURE")
        dep.duration = time.monotonic() - started
        dep.last_check = time.time()
        if dep.up is not False and not ok:
            log.warning("dependency %s is down: %s", dep.name, error)
        elif dep.up is False and ok:
            log.info("dependency %s is up again", dep.name)
        dep.up, dep.error = ok, error
        m = self.rt.metrics
        if dep.gauge:
            m.f[dep.gauge].set((), 0 if ok else 1)
        m.f["ges_dependency_last_check_timestamp_seconds"].set((dep.name,), dep.last_check)
        m.f["ges_dependency_check_duration_seconds"].set((dep.name,), dep.duration)

    def start(self) -> None:
        """Start the periodic checks."""
        self._task = asyncio.create_task(self._loop(), name="health-checker")

    async def stop(self) -> None:
        """Stop checking and close the HTTP client."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    async def _loop(self) -> None:
        s = self.rt.settings
        while True:
            await asyncio.sleep(
                random.uniform(s.health_check_min_seconds, s.health_check_max_seconds)
            )
            try:
                await self.check_all()
            except Exception:
                log.exception("health check cycle failed")
                self.rt.metrics.alarm("UNCAUGHT_EXCEPTION")

    def readiness(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        """Ready when every required dependency is up; the per-dependency detail."""
        detail = {
            d.name: {
                "status": "up" if d.up else ("down" if d.up is False else "unknown"),
                "required": d.required,
                "lastCheck": d.last_check,
                **({"error": d.error} if d.error else {}),
            }
            for d in self.dependencies
        }
        ready = all(d.up for d in self.dependencies if d.required)
        return ready, detail

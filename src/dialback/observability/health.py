"""The dependency health checker: one background task per process.

Every 15-20 s (jittered, configurable) it checks each configured dependency with its own
timeout, sets the GES health gauges (1 = down, 0 = up) and GES_HEALTH, records when each
check finished and how long it took, and keeps the state that readiness reads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.kit.errors import is_dns_failure
from dialback.observability.events import Events
from dialback.routing.transport import RoutingTransport
from dialback.settings import Settings
from dialback.throttle.counters import Counters

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


class Inconclusive(Exception):
    """A check could not tell (what it reads from is itself unreachable): its gauge keeps
    its last value."""


class HealthChecker:
    """Checks dependencies periodically and publishes their state.

    ``counters`` is dialback's own Redis (None when embedded); ``routing_redis`` whether the
    transport is the routing Redis; ``watch_routing_engine`` whether a routing engine is
    expected to consume (ALL_URS_DOWN).
    """

    def __init__(
        self,
        settings: Settings,
        events: Events,
        engine: AsyncEngine,
        *,
        transport: RoutingTransport,
        counters: Counters | None,
        routing_redis: bool,
        watch_routing_engine: bool,
        auth_check: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.events = events
        self.engine = engine
        self.transport = transport
        self.dependencies: list[Dependency] = []
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self.consumers_seen: int | None = None
        """Routing-engine consumers active within the window at the last check that could
        read them (None: never read, or no routing engine is watched)."""
        self.consumers_seen_at: float | None = None
        s = settings
        deps = self.dependencies
        if engine.dialect.name == "postgresql":
            deps.append(Dependency("postgres", "POSTGRES_STATUS", self._check_db, True, True))
        else:
            deps.append(Dependency("database", None, self._check_db, True, False))
        if counters is not None:
            # Not required: while it is down throttles count per replica and bookings go on;
            # failing readiness would take every replica (they share it) out of service.
            deps.append(Dependency("redis", "REDIS_CONNECTION", counters.ping, False, False))
        if routing_redis:
            deps.append(Dependency("routing_redis", "ORS_REDIS_STATUS", transport.ping, True, True))
        if watch_routing_engine:
            deps.append(
                Dependency(
                    "routing_engine", "ALL_URS_DOWN", self._check_routing_engine, False, False
                )
            )
        if auth_check is not None:
            # The operators' OIDC provider (discovery + JWKS). Not required: the public
            # callback API never needs it, and its outage must not take callbacks out of
            # service; it still counts in GES_HEALTH, as GES counts its GWS dependencies.
            deps.append(
                Dependency("gws_auth", "GWS_AUTH_STATUS", self._auth_check(auth_check), False, True)
            )
        for name, gauge, url in (
            ("gws_auth", "GWS_AUTH_STATUS", None if auth_check else s.auth_health_url),
            ("gws_env", "GWS_ENV_STATUS", s.tenant_directory_health_url),
            ("gws_config", "GWS_CONFIG_STATUS", s.config_source_health_url),
        ):
            if url:
                deps.append(Dependency(name, gauge, self._http_check(url), True, True))

    @staticmethod
    def _auth_check(check: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def checked() -> None:
            try:
                await check()
            except Exception as exc:
                raise DependencyDown(str(exc) or type(exc).__name__) from exc

        return checked

    def _http_check(self, url: str) -> Callable[[], Awaitable[None]]:
        async def check() -> None:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=self.settings.health_check_timeout_seconds)
            try:
                resp = await self._http.get(url)
            except httpx.HTTPError as exc:
                self.events.gws_server_error()
                raise DependencyDown(f"{type(exc).__name__}: {exc}") from exc
            if resp.status_code in (401, 403):
                self.events.gws_credentials_rejected()
                raise DependencyDown(f"credentials rejected ({resp.status_code})")
            if resp.status_code >= 500:
                self.events.gws_server_error()
                raise DependencyDown(f"server error ({resp.status_code})")
            if resp.status_code >= 400:
                raise DependencyDown(f"unexpected status {resp.status_code}")

        return check

    async def _check_db(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def _check_routing_engine(self) -> None:
        # ALL_URS_DOWN says whether an engine consumes, not whether the routing Redis answers
        # (ORS_REDIS_STATUS says that): a read that fails, or a Redis too freshly restarted
        # for its consumers to have come back, tells nothing about the engine.
        window = int(self.settings.routing_engine_idle_seconds * 1000)
        budget = self.settings.health_check_timeout_seconds * 0.8
        uptime: float | None = None
        try:
            consumers = await asyncio.wait_for(self.transport.active_consumers(window), budget)
            if consumers == 0:
                uptime = await asyncio.wait_for(self.transport.uptime_seconds(), budget)
        except Exception as exc:
            raise Inconclusive(f"routing Redis unreadable: {type(exc).__name__}") from exc
        self.consumers_seen, self.consumers_seen_at = consumers, time.time()
        if consumers == 0:
            if uptime is not None and uptime * 1000 < window:
                raise Inconclusive(f"routing Redis up for {uptime:.0f} s only")
            raise DependencyDown(f"no routing-engine consumer active within {window} ms")

    async def check_all(self) -> None:
        """Check every dependency now, concurrently, and publish the results."""
        await asyncio.gather(*(self._check_one(d) for d in self.dependencies))
        down = sum(1 for d in self.dependencies if d.in_ges_health and d.up is False)
        self.events.ges_health(down)

    async def _check_one(self, dep: Dependency) -> None:
        timeout = self.settings.health_check_timeout_seconds
        started = time.monotonic()
        try:
            await asyncio.wait_for(dep.check(), timeout=timeout)
            ok, error = True, ""
        except Inconclusive as exc:
            dep.last_check = time.time()
            dep.duration = time.monotonic() - started
            log.debug("dependency %s: check inconclusive: %s", dep.name, exc)
            self.events.dependency_checked(dep.name, None, True, dep.last_check, dep.duration)
            return
        except TimeoutError:
            ok, error = False, f"timed out after {timeout}s"
        except Exception as exc:  # every failure of a dependency means "down"
            ok, error = False, str(exc)[:300] or type(exc).__name__
            if is_dns_failure(exc):
                self.events.dns_failure()
        dep.duration = time.monotonic() - started
        dep.last_check = time.time()
        if dep.up is not False and not ok:
            log.warning("dependency %s is down: %s", dep.name, error)
        elif dep.up is False and ok:
            log.info("dependency %s is up again", dep.name)
        dep.up, dep.error = ok, error
        self.events.dependency_checked(dep.name, dep.gauge, ok, dep.last_check, dep.duration)

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
        s = self.settings
        while True:
            await asyncio.sleep(
                random.uniform(s.health_check_min_seconds, s.health_check_max_seconds)
            )
            try:
                await self.check_all()
            except Exception:
                log.exception("health check cycle failed")
                self.events.uncaught_exception("health")

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

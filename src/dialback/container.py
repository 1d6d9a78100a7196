"""The process-wide runtime: store, caches, routing transport, monitor and simulator."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.audit.service import AuditLog
from dialback.callbacks.booking import CallbackStore, store_for
from dialback.callbacks.lifecycle import Lifecycle, RetryRule
from dialback.callbacks.service import CallbackService
from dialback.callins.service import CallInService
from dialback.db.engine import DbTimeouts, create_engine
from dialback.db.migrations import current_version, latest_version, migrate
from dialback.identity.admin_tokens import AdminTokens
from dialback.identity.authenticate import AdminAuthenticator
from dialback.identity.bruteforce import AttemptLimiter
from dialback.identity.oidc import OidcClient
from dialback.identity.sessions import SessionManager
from dialback.identity.signin import SignIn
from dialback.identity.users import DemoAdmin, UserAdmin, ensure_demo_admin
from dialback.kit.errors import ApiError
from dialback.monitor.monitor import CallbackMonitor
from dialback.observability.events import Events
from dialback.observability.health import HealthChecker
from dialback.observability.health_view import HealthView
from dialback.observability.logging import set_on_failure
from dialback.observability.loop_lag import LoopLagMonitor
from dialback.observability.metrics import Metrics
from dialback.observability.recent_log import recent_log
from dialback.retention.service import RetentionService
from dialback.retention.sweeper import RetentionSweeper
from dialback.routing.simulator import RoutingSimulator
from dialback.routing.transport import MemoryTransport, RedisTransport, RoutingTransport
from dialback.services.repository import ServiceCache, ServiceRecord
from dialback.services.service import ServiceAdmin
from dialback.settings import Settings
from dialback.statistics.service import StatisticsService
from dialback.tenants.auth import KeyCache
from dialback.tenants.bootstrap import DemoCredentials, ensure_demo
from dialback.tenants.service import TenantAdmin
from dialback.throttle.counters import (
    Counters,
    FallbackCounters,
    MemoryCounters,
    RedisCounters,
)
from dialback.throttle.resp import RespLink

log = logging.getLogger("dialback.runtime")


def redis_client(url: str, timeout: float = 5) -> aioredis.Redis:
    """A Redis client with bounded timeouts, so a dead server fails fast."""
    return aioredis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=3,
        health_check_interval=15,
    )


def db_timeouts_of(settings: Settings) -> DbTimeouts:
    """The PostgreSQL timeouts ``settings`` configure."""
    return DbTimeouts(
        connect_seconds=settings.db_connect_timeout_seconds,
        statement_seconds=settings.db_statement_timeout_seconds,
        lock_seconds=settings.db_lock_timeout_seconds,
        idle_in_transaction_seconds=settings.db_idle_in_transaction_timeout_seconds,
        pool_seconds=settings.db_pool_timeout_seconds,
    )


STOP_BOUND_SECONDS = 20.0
"""The longest one part of the runtime may take to stop (each bounds its own work below it)."""


async def _run(stop: Callable[[], Awaitable[None]]) -> None:
    await stop()


async def _bounded_stop(name: str, stop: Callable[[], Awaitable[None]]) -> None:
    # asyncio.wait, not wait_for: on timeout it does not wait for a task that will not end.
    task: asyncio.Task[None] = asyncio.create_task(_run(stop), name=f"stop {name}")
    _done, pending = await asyncio.wait({task}, timeout=STOP_BOUND_SECONDS)
    if not pending:
        task.result()
        return
    waiting = []
    for t in asyncio.all_tasks():
        frames = t.get_stack(limit=3)
        where = " < ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames) or "?"
        waiting.append(f"{t.get_name()} at {where}")
    log.error(
        "the %s did not stop within %.0f s; left behind. Tasks: %s",
        name,
        STOP_BOUND_SECONDS,
        "; ".join(waiting),
    )


class Container:
    """Everything a dialback process holds; built from Settings, started and stopped once."""

    def __init__(self, settings: Settings, *, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.instance_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        db_timeouts = db_timeouts_of(settings)
        self.engine = engine or create_engine(
            settings.database_url, settings.db_pool_size, db_timeouts
        )
        # Bookings (the create hot path): one round trip on a raw asyncpg pool on PostgreSQL.
        self.store: CallbackStore = store_for(self.engine, settings.db_pool_size, db_timeouts)
        self.counters: Counters = (
            FallbackCounters(
                RedisCounters(
                    redis_client(
                        settings.redis_url.get_secret_value(),
                        settings.redis_command_timeout_seconds,
                    ),
                    link=RespLink.from_url(
                        settings.redis_url.get_secret_value(),
                        timeout=settings.redis_command_timeout_seconds,
                        connect_timeout=settings.redis_command_timeout_seconds,
                    ),
                ),
                retry_seconds=settings.redis_fallback_retry_seconds,
            )
            if settings.redis_url
            else MemoryCounters()
        )
        self.transport: RoutingTransport = (
            RedisTransport(
                redis_client(settings.routing_redis_url.get_secret_value()),
                dispatch_stream=settings.routing_stream,
                outcome_stream=settings.outcome_stream,
                outcome_group=settings.outcome_group,
                routing_group=settings.routing_group,
                dedup_ttl=settings.dedup_ttl_seconds,
            )
            if settings.routing_redis_url
            else MemoryTransport()
        )
        self.metrics = Metrics(
            data_dir=Path(settings.data_dir),
            tolerances=settings.tolerances(),
            gws=settings.gws_configured(),
        )
        self.events = Events(self.metrics, settings.monitor_lagging_threshold_seconds)
        set_on_failure(self.events.logging_failed)
        self._service_tenant: dict[str, str] = {}
        self.service_cache = ServiceCache(self.engine, on_service=self._service_seen)
        self.keys = KeyCache(
            self.engine, settings.api_key_cache_seconds, on_tenant=self._tenant_seen
        )
        self.services = ServiceAdmin(
            self.engine, self.service_cache, self.events, self.provision_routing
        )
        self.tenants = TenantAdmin(self.engine, self.keys, self.events)
        self.callins = CallInService(self.engine, self.counters, self.events, self.settings)
        self.lifecycle = Lifecycle(self._retry_rule)
        self.monitor: CallbackMonitor | None = (
            CallbackMonitor(
                self.engine,
                self.transport,
                self.lifecycle,
                self.events,
                settings,
                owner=self.instance_id,
            )
            if settings.monitor_enabled
            else None
        )
        self.callbacks = CallbackService(
            self.engine,
            self.store,
            self.counters,
            self.service_cache,
            self.transport,
            self.events,
            settings,
            wake_monitor=self.wake_monitor,
        )
        self.statistics = StatisticsService(
            self.engine, self.service_cache, self.transport, self.callbacks
        )
        self.simulator: RoutingSimulator | None = (
            RoutingSimulator(
                self.transport,
                agents=settings.sim_agents,
                handle_seconds=settings.sim_handle_seconds,
                ring_seconds=settings.sim_ring_seconds,
                answer_probability=settings.sim_answer_probability,
                consumer=f"sim-{self.instance_id}",
            )
            if settings.simulator_enabled()
            else None
        )
        # The operators' OIDC provider (None: not configured; no GWS_AUTH_STATUS from it).
        self.oidc: OidcClient | None = (
            OidcClient(settings, self.events) if settings.oidc_issuer else None
        )
        self.health = HealthChecker(
            settings,
            self.events,
            self.engine,
            transport=self.transport,
            counters=self.counters if settings.redis_url else None,
            routing_redis=settings.routing_redis_url is not None,
            watch_routing_engine=settings.routing_redis_url is not None
            or self.simulator is not None,
            auth_check=self.oidc.check if self.oidc else None,
        )
        # The UI's Health page reads what /metrics exports; its Developer page, this
        # process's ring of recent warnings and errors (installed on the root logger).
        self.health_view = HealthView(self.health, self.metrics)
        self.recent_log = recent_log()
        self.loop_lag = LoopLagMonitor(self.events)
        self.retention = RetentionService(
            self.engine, self.transport, self.events, settings, consumer=self.instance_id
        )
        self.retention_sweeper: RetentionSweeper | None = (
            RetentionSweeper(self.retention, self.events, settings.retention_interval_seconds)
            if settings.retention_enabled
            else None
        )
        self.audit = AuditLog(self.engine, self.events)
        # Brute-force limits on authentication failures, per client address.
        self.attempts = AttemptLimiter(self.counters, self.events, settings)
        self.authenticator = AdminAuthenticator(
            AdminTokens(settings.admin_token_list()), self.attempts, self.oidc
        )
        # Operators: local users and the Callback UI's sessions.
        self.users = UserAdmin(self.engine)
        self.sessions = SessionManager(self.engine, settings, self.users)
        self.signin = SignIn(self.users, self.sessions, self.audit)
        self.demo_admin: DemoAdmin | None = None
        self.started_at = time.time()
        self.demo: DemoCredentials | None = None
        self._started = False

    async def start(self) -> None:
        """Migrate (when configured), bootstrap the demo, start the monitor and simulator."""
        if self.settings.migrate_on_start:
            applied = await migrate(self.engine)
            if applied:
                log.info("applied migrations %s", applied)
        else:
            have = await current_version(self.engine)
            if have < latest_version():
                raise RuntimeError(
                    f"database schema is at version {have}, the code needs {latest_version()}: "
                    "run `dialback migrate`"
                )
        await self.store.start()
        if self.settings.demo:
            self.demo = await ensure_demo(self.engine, self.settings)
            self.keys.clear()
            # The demo may have generated an admin token.
            self.authenticator.tokens = AdminTokens(self.settings.admin_token_list())
            await self._demo_admin()
        await self._known_series()
        self.loop_lag.start()
        if self.simulator:
            self.simulator.start()
        if self.monitor:
            self.monitor.start()
        if self.retention_sweeper:
            self.retention_sweeper.start()
        await self.health.check_all()
        self.health.start()
        self._started = True

    async def _demo_admin(self) -> None:
        """The demo administrator of the Callback UI (DIALBACK_DEMO_ADMIN_*)."""
        pinned = self.settings.demo_admin_password
        try:
            self.demo_admin = await ensure_demo_admin(
                self.users,
                self.settings.demo_admin_user,
                pinned.get_secret_value() if pinned is not None else None,
            )
        except ApiError as exc:
            raise RuntimeError(f"DIALBACK_DEMO_ADMIN_USER/PASSWORD: {exc.message}") from None

    async def _known_series(self) -> None:
        """Create every tenant's and service's labelled series at 0."""
        import sqlalchemy as sa

        from dialback.db.schema import services, tenants

        async with self.engine.connect() as conn:
            names = dict((await conn.execute(sa.select(tenants.c.id, tenants.c.name))).all())
            for tid, svc in (
                await conn.execute(sa.select(services.c.tenant_id, services.c.name))
            ).all():
                if tid in names:
                    self.events.service_known(names[tid], svc)
        for name in names.values():
            self.events.tenant_known(name)

    async def stop(self) -> None:
        """Stop background work and close connections; a part that does not stop within its
        bound is logged with what every task is waiting on, and left behind."""
        stages: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("health checker", self.health.stop),
            ("loop-lag monitor", self.loop_lag.stop),
        ]
        if self.monitor:
            stages.append(("callback monitor", self.monitor.stop))
        if self.simulator:
            stages.append(("routing simulator", self.simulator.stop))
        if self.retention_sweeper:
            stages.append(("retention sweeper", self.retention_sweeper.stop))
        for name, stop in stages:
            await _bounded_stop(name, stop)
        closers = [self.transport.close, self.counters.close, self.store.close]
        if self.oidc:
            closers.append(self.oidc.aclose)
        for closer in closers:
            try:
                await asyncio.wait_for(closer(), timeout=5)
            except Exception:
                log.debug("close failed", exc_info=True)
        await self.engine.dispose()

    def _tenant_seen(self, tenant_id: str, name: str) -> None:
        self._service_tenant[tenant_id] = name
        self.events.tenant_known(name)

    def _service_seen(self, svc: ServiceRecord) -> None:
        name = self._service_tenant.get(svc.tenant_id)
        if name is not None:
            self.events.service_known(name, svc.name)

    async def provision_routing(self) -> bool:
        """Create the routing streams and consumer groups; count a failure as an alarm."""
        try:
            await asyncio.wait_for(self.transport.ensure_groups(), timeout=5)
            return True
        except Exception:
            log.warning("provisioning the routing stream and groups failed", exc_info=True)
            self.events.provisioning_failed()
            return False

    async def _retry_rule(self, tenant_id: str, service_name: str) -> RetryRule | None:
        """The retry policy of a callback's service (None: the service is gone)."""
        svc = await self.service_cache.get(tenant_id, service_name)
        return svc.config.retry if svc is not None else None

    def wake_monitor(self) -> None:
        """Dispatch an immediate callback now rather than at the next poll."""
        if self.monitor:
            self.monitor.wake()

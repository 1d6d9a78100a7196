"""Shared fixtures: real PostgreSQL and Redis servers, a migrated template database,
and a started dialback runtime with HTTP clients for both listeners."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dialback.app import create_internal_app, create_public_app
from dialback.db.engine import create_engine
from dialback.db.migrations import migrate
from dialback.runtime import Runtime
from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from dialback.settings import Settings
from dialback.tenants import repository as tenants_repo
from tests.servers import PostgresServer, RedisServer

ADMIN_TOKEN = "test-admin-token"
TEMPLATE_DB = "dialback_template"
_db_seq = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        server.psql(f"CREATE DATABASE {TEMPLATE_DB}")

        async def prepare() -> None:
            engine = create_engine(server.url(TEMPLATE_DB))
            await migrate(engine)
            await engine.dispose()

        asyncio.run(prepare())
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def routing_redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh database cloned from the migrated template."""
    name = f"t_{os.getpid()}_{next(_db_seq)}"
    pg_server.psql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    try:
        yield pg_server.url(name)
    finally:
        pg_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    _flush(redis_server.url)
    return redis_server.url


@pytest.fixture
def routing_redis_url(routing_redis_server: RedisServer) -> str:
    _flush(routing_redis_server.url)
    return routing_redis_server.url


SettingsFactory = Callable[..., Settings]


def make_settings(**overrides: Any) -> Settings:
    """Settings for in-process tests: fast monitor, quick simulator, admin token set."""
    base: dict[str, Any] = {
        "admin_tokens": ADMIN_TOKEN,
        "monitor_poll_seconds": 0.05,
        "sim_handle_seconds": 0.05,
        "sim_ring_seconds": 0.01,
        "sim_answer_probability": 1.0,
        "api_key_cache_seconds": 0.0,
    }
    base.update(overrides)
    return Settings(**base)


@dataclass
class Stack:
    """A started runtime with clients for both listeners."""

    rt: Runtime
    public: httpx.AsyncClient
    internal: httpx.AsyncClient

    async def tenant(
        self,
        name: str = "acme",
        *,
        service: str = "sales",
        config: ServiceConfig | None = None,
        settings: dict[str, Any] | None = None,
    ) -> str:
        """Create a tenant with one service and return a fresh API key for it."""
        async with self.rt.engine.begin() as conn:
            t = await tenants_repo.get_tenant_by_name(conn, name)
            if t is None:
                t = await tenants_repo.create_tenant(conn, name, settings or {})
            if service and await services_repo.get_service(conn, t.id, service) is None:
                cfg = config or ServiceConfig.model_validate(
                    {"businessHours": {"alwaysOpen": True}}
                )
                await services_repo.create_service(conn, t.id, service, cfg)
            key = tenants_repo.generate_key()
            await tenants_repo.create_api_key(conn, t.id, "test", key)
        self.rt.keys.clear()
        return key


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own (to stop and restart), with an empty database
    ``dialback``."""
    pg = PostgresServer().start()
    try:
        pg.psql("CREATE DATABASE dialback")
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def settings_with(pg_url: str, redis_url: str, routing_redis_url: str) -> SettingsFactory:
    """``make_settings(**overrides)`` on this test's PostgreSQL database and the two Redis
    servers (``database_url`` may be overridden too, e.g. with ``own_postgres``)."""

    def build(**overrides: Any) -> Settings:
        servers = {
            "database_url": pg_url,
            "redis_url": redis_url,
            "routing_redis_url": routing_redis_url,
        }
        return make_settings(**{**servers, **overrides})

    return build


@pytest.fixture
def stack_settings(settings_with: SettingsFactory) -> Settings:
    """Settings pointing at this test's PostgreSQL database and the two Redis servers."""
    return settings_with(simulator="on")


@pytest.fixture
async def stack(stack_settings: Settings) -> AsyncIterator[Stack]:
    """dialback on PostgreSQL + Redis + routing Redis with the simulator, clients via ASGI."""
    async with started_stack(stack_settings) as s:
        yield s


class started_stack:
    """Start a Runtime and ASGI clients for ``settings``; stop everything on exit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> Stack:
        rt = Runtime(self.settings)
        await rt.start()
        public = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_public_app(rt)), base_url="http://public"
        )
        internal = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_internal_app(rt)),
            base_url="http://internal",
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        self.stack = Stack(rt, public, internal)
        return self.stack

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.public.aclose()
        await self.stack.internal.aclose()
        await self.stack.rt.stop()


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async predicate until it returns a truthy value; fail with the last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")

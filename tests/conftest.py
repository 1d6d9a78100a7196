"""Shared fixtures: real PostgreSQL and Redis servers, a migrated template database,
a started dialback runtime with HTTP clients for both listeners, and captured JSON logs."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.servers import PostgresServer, RedisServer

from dialback.db.engine import create_engine
from dialback.db.migrations import migrate
from dialback.settings import Settings
from tests.support.logs import logging_to
from tests.support.oidc_provider import OidcProvider
from tests.support.stack import TEMPLATE_DB, SettingsFactory, Stack, make_settings, started_stack

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
        server.discard()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.discard()


@pytest.fixture(scope="session")
def routing_redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.discard()


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


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes it runs twice: on this test's PostgreSQL database, then on a new
    SQLite file (the embedded store)."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    _flush(redis_server.url)
    return redis_server.url


@pytest.fixture
def routing_redis_url(routing_redis_server: RedisServer) -> str:
    _flush(routing_redis_server.url)
    return routing_redis_server.url


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own (to stop and restart), with an empty database
    ``dialback``."""
    pg = PostgresServer().start()
    try:
        pg.psql("CREATE DATABASE dialback")
        yield pg
    finally:
        pg.discard()


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


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """A real OIDC provider (oidc-provider-mock, nonce required, JWT access tokens for the
    audience "dialback-api") on a free 127.0.0.1 port for the session. Give each test its own
    user subjects (``set_user``); a test that stops the provider starts an ``OidcProvider``
    of its own (tests/support/oidc_provider.py)."""
    provider = OidcProvider().start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def captured_logs(tmp_path: Path) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Route logging to a file at trace level (JSON); return a reader of its lines."""
    path = tmp_path / "log.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with logging_to(fd, "trace", max_len=2048, fmt="json"):
            yield lambda: [json.loads(line) for line in path.read_text().splitlines()]
    finally:
        os.close(fd)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules holding a ``slow`` test run first: on several workers (``make test``), the long
    ones then overlap with the many short ones instead of ending the run alone."""
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)

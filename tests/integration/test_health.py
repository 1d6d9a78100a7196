"""Dependency health: gauges flip within one check interval, readiness follows, GES_HEALTH rolls up."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest
from testbed.metrics_parse import parse, value
from testbed.servers import PostgresServer, RedisServer

from tests.support.stack import (
    TEMPLATE_DB,
    SettingsFactory,
    Stack,
    make_settings,
    started_stack,
    wait_for,
)

FAST = {
    "health_check_min_seconds": 0.2,
    "health_check_max_seconds": 0.3,
    "health_check_timeout_seconds": 1.0,
}


async def gauges(stack: Stack) -> dict[str, float | None]:
    samples = parse((await stack.internal.get("/metrics")).text)
    names = (
        "REDIS_CONNECTION",
        "ORS_REDIS_STATUS",
        "POSTGRES_STATUS",
        "GES_HEALTH",
        "ALL_URS_DOWN",
        "GWS_AUTH_STATUS",
        "GWS_ENV_STATUS",
        "GWS_CONFIG_STATUS",
    )
    return {n: value(samples, n) for n in names}


async def ready(stack: Stack) -> tuple[int, dict]:
    r = await stack.internal.get("/health/ready")
    return r.status_code, r.json()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


async def test_redis_down_and_back(
    pg_url: str, own_redis: RedisServer, routing_redis_url: str
) -> None:
    settings = make_settings(
        database_url=pg_url,
        redis_url=own_redis.url,
        routing_redis_url=routing_redis_url,
        simulator="on",
        **FAST,
    )
    async with started_stack(settings) as stack:
        assert (await gauges(stack))["REDIS_CONNECTION"] == 0
        assert (await ready(stack))[0] == 200
        own_redis.stop()

        async def down() -> bool:
            return (await gauges(stack))["REDIS_CONNECTION"] == 1

        await wait_for(down, timeout=5)
        code, body = await ready(stack)
        # Shown, but not required: throttles count per replica meanwhile (test_throttle_fallback).
        assert body["dependencies"]["redis"]["status"] == "down"
        assert code == 200 and body["dependencies"]["redis"]["required"] is False
        # dialback's own Redis does not count in GES_HEALTH (GES semantics).
        assert (await gauges(stack))["GES_HEALTH"] == 0
        # Liveness does no dependency I/O and stays up.
        assert (await stack.internal.get("/health/live")).status_code == 200
        # A booking goes on without the throttle Redis.
        key = await stack.tenant()
        r = await stack.public.post(
            "/engagement/v3/callbacks/create",
            json={"serviceName": "sales", "phoneNumber": "+14155550123"},
            headers={"x-api-key": key},
        )
        assert r.status_code == 200, r.text
        assert value(parse((await stack.internal.get("/metrics")).text), "UNCAUGHT_EXCEPTION") == 0
        own_redis.start()

        async def up() -> bool:
            return (await gauges(stack))["REDIS_CONNECTION"] == 0 and (await ready(stack))[0] == 200

        await wait_for(up, timeout=8)


async def test_routing_redis_down_raises_ges_health_and_submit_failures(
    pg_url: str, redis_url: str, own_redis: RedisServer
) -> None:
    settings = make_settings(
        database_url=pg_url,
        redis_url=redis_url,
        routing_redis_url=own_redis.url,
        simulator="on",
        **FAST,
    )
    async with started_stack(settings) as stack:
        key = await stack.tenant()
        own_redis.stop()

        async def down() -> bool:
            g = await gauges(stack)
            return g["ORS_REDIS_STATUS"] == 1 and g["GES_HEALTH"] == 1

        await wait_for(down, timeout=5)
        assert (await ready(stack))[0] == 503
        # A booking is still accepted (it is in the store); publishing it fails and is counted.
        r = await stack.public.post(
            "/engagement/v3/callbacks/create",
            json={"serviceName": "sales", "phoneNumber": "+14155550123"},
            headers={"x-api-key": key},
        )
        assert r.status_code == 200
        cid = r.json()["data"]["id"]

        async def submit_failed() -> bool:
            return (
                value(parse((await stack.internal.get("/metrics")).text), "CB_SUBMIT_FAILED") >= 1
            )

        await wait_for(submit_failed, timeout=10)
        own_redis.start()

        async def completed() -> bool:
            r = await stack.public.post(
                "/engagement/v3/callbacks/retrieve", json={"id": cid}, headers={"x-api-key": key}
            )
            return r.json()["data"]["callbackState"] == "COMPLETED"

        # Nothing acknowledged is lost: once the routing Redis is back the callback goes through.
        await wait_for(completed, timeout=20)
        g = await gauges(stack)
        assert g["ORS_REDIS_STATUS"] == 0 and g["GES_HEALTH"] == 0


async def test_postgres_down_and_back(
    settings_with: SettingsFactory, own_postgres: PostgresServer
) -> None:
    pg = own_postgres
    settings = settings_with(
        database_url=pg.url("dialback"),
        simulator="on",
        **FAST,
    )
    async with started_stack(settings) as stack:
        g = await gauges(stack)
        assert g["POSTGRES_STATUS"] == 0 and g["GES_HEALTH"] == 0
        pg.stop()

        async def down() -> bool:
            g = await gauges(stack)
            return g["POSTGRES_STATUS"] == 1 and g["GES_HEALTH"] == 1

        await wait_for(down, timeout=8)
        code, body = await ready(stack)
        assert code == 503 and body["dependencies"]["postgres"]["status"] == "down"
        pg.restart()

        async def up() -> bool:
            g = await gauges(stack)
            return (
                g["POSTGRES_STATUS"] == 0
                and g["GES_HEALTH"] == 0
                and (await ready(stack))[0] == 200
            )

        await wait_for(up, timeout=15)
    assert TEMPLATE_DB  # the shared template server is untouched by this test


async def test_all_urs_down_follows_routing_engine_consumers(
    settings_with: SettingsFactory,
) -> None:
    settings = settings_with(
        simulator="off",
        routing_engine_idle_seconds=1.0,
        **FAST,
    )
    async with started_stack(settings) as stack:

        async def urs(expected: float) -> bool:
            return (await gauges(stack))["ALL_URS_DOWN"] == expected

        await wait_for(lambda: urs(1), timeout=5)
        # ALL_URS_DOWN is not required for readiness: bookings can still be taken.
        assert (await ready(stack))[0] == 200
        from dialback.routing.simulator import RoutingSimulator

        sim = RoutingSimulator(stack.rt.transport, agents=1, consumer="urs-1")
        sim.start()
        try:
            await wait_for(lambda: urs(0), timeout=5)
        finally:
            await sim.stop()
        await wait_for(lambda: urs(1), timeout=8)


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


async def test_http_dependencies_credentials_and_server_errors(
    settings_with: SettingsFactory,
) -> None:
    handler = type("H", (_Handler,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"
    settings = settings_with(
        simulator="on",
        auth_health_url=url,
        tenant_directory_health_url=url,
        config_source_health_url=url,
        **FAST,
    )
    try:
        async with started_stack(settings) as stack:
            g = await gauges(stack)
            assert (
                g["GWS_AUTH_STATUS"] == 0
                and g["GWS_ENV_STATUS"] == 0
                and g["GWS_CONFIG_STATUS"] == 0
            )
            handler.status = 401

            async def creds() -> bool:
                s = parse((await stack.internal.get("/metrics")).text)
                return (
                    value(s, "GWS_INCORRECT_CLIENT_CREDENTIALS") >= 1
                    and value(s, "GWS_AUTH_STATUS") == 1
                )

            await wait_for(creds, timeout=5)
            # GES_HEALTH is derived once the cycle's checks are all in: a moment later.
            await wait_for(lambda: _gauge_is(stack, "GES_HEALTH", 3), timeout=5)
            handler.status = 503

            async def server_error() -> bool:
                return (
                    value(parse((await stack.internal.get("/metrics")).text), "GWS_SERVER_ERROR")
                    >= 1
                )

            await wait_for(server_error, timeout=5)
            handler.status = 200
            await wait_for(lambda: _gauge_is(stack, "GES_HEALTH", 0), timeout=5)
    finally:
        server.shutdown()
        server.server_close()


async def _gauge_is(stack: Stack, name: str, expected: float) -> bool:
    return (await gauges(stack))[name] == expected


async def test_dns_failure_is_counted(pg_url: str, routing_redis_url: str) -> None:
    # glibc refuses this host name locally (invalid characters): no DNS query leaves the machine.
    settings = make_settings(
        database_url=pg_url,
        redis_url="redis://bad_host!:6379/0",
        routing_redis_url=routing_redis_url,
        simulator="on",
        **FAST,
    )
    async with started_stack(settings) as stack:

        async def counted() -> bool:
            s = parse((await stack.internal.get("/metrics")).text)
            return value(s, "DNS_FAILURE") >= 1 and value(s, "REDIS_CONNECTION") == 1

        await wait_for(counted, timeout=5)
    await asyncio.sleep(0)

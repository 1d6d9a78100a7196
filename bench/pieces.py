"""Where a create's time goes, piece by piece, in one process (one request in flight).

Starts its own PostgreSQL and Redis, a dialback ``Container`` in this process, and times each
piece of the create path many times: this process's CPU per call (``time.process_time``,
user + system, so the servers' CPU is left out) and the wall time per call (which includes
waiting for PostgreSQL/Redis). The pieces overlap: the whole create contains the others.

Run: ``python -m bench.pieces [--calls 500]`` (prints a table, and JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from starlette.types import Message

from bench.load import create_body
from bench.stack import SERVICE_CONFIG, TENANT_SETTINGS, Servers
from dialback.app import create_public_app
from dialback.callbacks.booking import NewCallback
from dialback.callbacks.schemas import CreateCallback
from dialback.callbacks.service import CallbackService, throttle_keys
from dialback.container import Container
from dialback.kit.phone import normalise_number
from dialback.kit.timefmt import utc_iso
from dialback.observability.logging import log_request, setup_logging
from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from dialback.settings import Settings
from dialback.tenants import repository as tenants_repo

Piece = Callable[[], Awaitable[Any]]


async def _time(fn: Piece, calls: int) -> tuple[float, float]:
    for _ in range(max(10, calls // 10)):
        await fn()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.process_time() - cpu0) / calls * 1e6, (time.perf_counter() - wall0) / calls * 1e6


async def measure(servers: Servers, calls: int) -> dict[str, dict[str, float]]:
    """CPU and wall microseconds per call of each piece."""
    settings = Settings(
        database_url=servers.database_url,
        redis_url=servers.redis.url,  # type: ignore[arg-type]
        routing_redis_url=servers.routing.url,  # type: ignore[arg-type]
        simulator="off",
        data_dir=str(servers.pg.dir),
    )
    rt = Container(settings)
    await rt.start()
    try:
        async with rt.engine.begin() as conn:
            t = await tenants_repo.create_tenant(conn, "pieces", TENANT_SETTINGS)
            svc = await services_repo.create_service(
                conn, t.id, "sales", ServiceConfig.model_validate(SERVICE_CONFIG)
            )
            key = tenants_repo.generate_key()
            await tenants_repo.create_api_key(conn, t.id, "pieces", key)
        tenant = t
        rng = random.Random(1)
        desired = utc_iso(time.time() + 86400)

        def body() -> bytes:
            return create_body("sales", desired, rng)

        def req() -> CreateCallback:
            return CreateCallback.model_validate_json(body())

        cfg = svc.config
        raw = await asyncpg.connect(servers.database_url)
        await raw.execute(
            "CREATE TABLE IF NOT EXISTS floor_callbacks (LIKE callbacks INCLUDING ALL)"
        )
        from bench.floor_app import INSERT

        def phone() -> str:
            return f"+1415{rng.randint(200, 999):03d}{rng.randint(0, 9999):04d}"

        async def p_validate() -> None:
            req()

        async def p_number() -> None:
            normalise_number(phone(), cfg.validation)

        async def p_redis() -> None:
            await rt.counters.incr_many(throttle_keys(tenant, phone(), time.time()))

        async def p_book() -> None:
            now = time.time()
            await rt.store.book(
                NewCallback(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant.id,
                    service_id=svc.id,
                    service_name="sales",
                    phone_number=phone(),
                    offer_type="SCHEDULED",
                    desired_time=now + 86400,
                    due_at=now + 86400,
                    priority=5,
                    language="en-US",
                    max_attempts=3,
                    created_at=now,
                    user_data={"orderId": "A1", "channel": "web"},
                ),
                max_open=1000,
                slot_start=None,
                slot_total=None,
            )

        async def p_raw_insert() -> None:
            now = time.time()
            await raw.execute(INSERT, str(uuid.uuid4()), "sales", phone(), now, 5, "{}", now)

        async def p_service() -> None:
            await rt.callbacks.create(tenant, req())

        app = create_public_app(rt)
        statuses: list[int] = []

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async def p_http() -> None:
            b = body()

            async def receive() -> Message:
                return {"type": "http.request", "body": b, "more_body": False}

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/engagement/v3/callbacks/create",
                "raw_path": b"/engagement/v3/callbacks/create",
                "root_path": "",
                "query_string": b"",
                "client": ("127.0.0.1", 1),
                "server": ("127.0.0.1", 3005),
                "headers": [
                    (b"host", b"127.0.0.1"),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(b)).encode()),
                    (b"x-api-key", key.encode()),
                ],
            }
            await app(scope, receive, send)

        async def fake_create(*_args: Any) -> str:
            return "00000000-0000-0000-0000-000000000000"

        async def p_http_stub() -> None:
            real = CallbackService.create
            CallbackService.create = fake_create  # type: ignore[method-assign]
            try:
                await p_http()
            finally:
                CallbackService.create = real  # type: ignore[method-assign]

        async def p_request_line() -> None:
            log_request(logging.INFO, "POST", "/engagement/v3/callbacks/create", 200, 0.0032, "abc")

        async def p_log_call() -> None:
            logging.getLogger("dialback.callbacks").info(
                "callback booked", extra={"service": "sales", "immediate": False}
            )

        pieces: dict[str, Piece] = {
            "HTTP create, in-process ASGI (everything but the socket)": p_http,
            "HTTP create with CallbackService.create stubbed (HTTP layer)": p_http_stub,
            "CallbackService.create (domain + store + Redis)": p_service,
            "booking store: dialback_book_callback (one round trip)": p_book,
            "raw asyncpg autocommit insert (the floor's)": p_raw_insert,
            "Redis throttle pipeline (incr_many)": p_redis,
            "pydantic CreateCallback.model_validate_json": p_validate,
            "phone number normalise_number": p_number,
            "request log line (log_request, rendered straight to JSON)": p_request_line,
            "any other log line (logging call, JsonFormatter, write)": p_log_call,
        }
        out: dict[str, dict[str, float]] = {}
        for name, fn in pieces.items():
            cpu, wall = await _time(fn, calls)
            out[name] = {"cpu_us": round(cpu, 1), "wall_us": round(wall, 1)}
        bad = [s for s in statuses if s != 200]
        if bad:
            raise RuntimeError(f"in-process creates answered {sorted(set(bad))}")
        await raw.close()
        return out
    finally:
        await rt.stop()


def main(argv: list[str] | None = None) -> int:
    """Print CPU and wall time per piece."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    devnull = os.open(os.devnull, os.O_WRONLY)
    setup_logging("info", fmt="json", fd=devnull)
    servers = Servers().start()
    try:
        try:
            import uvloop

            result = uvloop.run(measure(servers, args.calls))
        except ImportError:  # pragma: no cover
            result = asyncio.run(measure(servers, args.calls))
    finally:
        servers.stop()
        os.close(devnull)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{'piece':62} {'CPU µs':>9} {'wall µs':>9}")
        for name, v in result.items():
            print(f"{name:62} {v['cpu_us']:9.1f} {v['wall_us']:9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The floor: the least a create can do with the same I/O as dialback's, for the ratio.

A bare Starlette route that parses the JSON body, makes one Redis round trip (the throttle
pipeline: INCR + EXPIRE) and one durable single-row INSERT (autocommit) into a copy of the
``callbacks`` table (same columns and indexes), then answers an orjson envelope. No
validation, no auth, no metrics, no logs. Same server stack as dialback (uvicorn, uvloop,
httptools, asyncpg, redis-py).

Run: ``python -m bench.floor_app --port P --database-url postgresql://... --redis-url redis://...``
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

INSERT = (
    "INSERT INTO floor_callbacks (id, tenant_id, service_id, service_name, phone_number, state,"
    " offer_type, desired_time, due_at, priority, language, user_data, params, attempt,"
    " max_attempts, created_at, updated_at) VALUES ($1, 'floor', 'floor', $2, $3, 'SCHEDULED',"
    " 'SCHEDULED', $4, $4, $5, 'en-US', $6::jsonb, '{}'::jsonb, 1, 3, $7, $7)"
)


def build_app(database_url: str, redis_url: str, pool_size: int = 20) -> Starlette:
    """The floor application."""
    state: dict[str, Any] = {}

    async def create(request: Request) -> Response:
        body = orjson.loads(await request.body())
        now = time.time()
        key = f"floor:num:{body['phoneNumber']}"
        async with state["redis"].pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 172800, nx=True)
            await pipe.execute()
        cid = str(uuid.uuid4())
        await state["pool"].execute(
            INSERT,
            cid,
            body["serviceName"],
            body["phoneNumber"],
            now + 86400,
            int(body.get("priority", 0)),
            orjson.dumps(body.get("userData", {})).decode(),
            now,
        )
        out = {"status": {"code": 200, "message": "Successful", "corrId": uuid.uuid4().hex}}
        out["data"] = {"id": cid}
        return Response(orjson.dumps(out), media_type="application/json")

    async def ping(_request: Request) -> Response:
        return Response(b"ok")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS floor_callbacks (LIKE callbacks INCLUDING ALL)"
            )
        finally:
            await conn.close()
        state["pool"] = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        state["redis"] = aioredis.from_url(redis_url, decode_responses=True)
        try:
            yield
        finally:
            await state["pool"].close()
            await state["redis"].aclose()

    return Starlette(
        routes=[
            Route("/engagement/v3/callbacks/create", create, methods=["POST"]),
            Route("/ping", ping),
        ],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> int:
    """Serve the floor app on 127.0.0.1."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--database-url", required=True)
    p.add_argument("--redis-url", required=True)
    args = p.parse_args(argv)
    uvicorn.run(
        build_app(args.database_url, args.redis_url),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="error",
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Liveness and readiness probes on the internal port."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

router = APIRouter(tags=["probes"])


@router.get("/health/live")
async def live(request: Request) -> JSONResponse:
    """Alive unless the monitor loop has stopped cycling; no dependency I/O."""
    rt = request.app.state.runtime
    mon = rt.monitor
    if mon is not None and mon.last_cycle_at:
        stale = time.time() - mon.last_cycle_at
        limit = max(60.0, rt.settings.monitor_lease_seconds * 2)
        if stale > limit:
            return JSONResponse({"status": "stuck", "monitorLastCycleAgeSeconds": round(stale, 1)}, 503)
    return JSONResponse({"status": "ok"})


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    """Ready when the store and configured Redis servers answer."""
    rt = request.app.state.runtime
    checks: dict[str, str] = {}

    async def check(name: str, coro: object) -> None:
        try:
            await asyncio.wait_for(coro, timeout=2.0)  # type: ignore[arg-type]
            checks[name] = "up"
        except Exception:
            checks[name] = "down"

    async def db_ping() -> None:
        import sqlalchemy as sa

        async with rt.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    await check("database", db_ping())
    if rt.settings.redis_url:
        await check("redis", rt.counters.ping())
    if rt.settings.routing_redis_url:
        await check("routingRedis", rt.transport.ping())
    ok = all(v == "up" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "dependencies": checks}, 200 if ok else 503)

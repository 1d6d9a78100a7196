"""While the routing Redis is down, the dispatch loop backs off for real: wakes (one per booking)
do not cut its pause short, its stall shows in a gauge, and liveness stays green (a restart
cannot cure an outage). Real PostgreSQL; the routing Redis URL names a port nothing listens on."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
from testbed.metrics_parse import parse, value

from dialback.app import create_internal_app
from dialback.container import Container
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.stack import SettingsFactory, wait_for


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_wakes_during_a_routing_outage_do_not_multiply_publish_attempts(
    settings_with: SettingsFactory,
) -> None:
    settings = settings_with(
        simulator="off",
        routing_redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        monitor_poll_seconds=0.05,
        monitor_stall_seconds=1.0,
    )
    rt = Container(settings)
    mon = rt.monitor
    assert mon is not None
    tenant_id, service_id = await tenant_and_service(rt.engine)
    await insert_due_callbacks(rt.engine, tenant_id, service_id, 5)
    calls: list[float] = []
    publish = rt.transport.publish

    async def counted(dispatches: list[Any]) -> list[bool]:
        calls.append(time.monotonic())
        return await publish(dispatches)

    rt.transport.publish = counted  # type: ignore[method-assign]
    internal = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_internal_app(rt)), base_url="http://i"
    )
    mon.start()
    try:
        await wait_for(lambda: _true(bool(calls)), timeout=5)
        # 200 bookings in 2 s, each waking the monitor.
        for _ in range(200):
            rt.wake_monitor()
            await asyncio.sleep(0.01)
        # Back-off 1 s, 2 s, ... (at most 5 s): the first attempt and at most two more.
        assert 1 <= len(calls) <= 3, len(calls)
        metrics = parse(rt.metrics.registry.render())
        assert value(metrics, "CB_SUBMIT_FAILED") == 5  # once per attempt, not per retry
        assert value(metrics, "ges_monitor_dispatch_stalled_seconds") >= 1.0
        assert mon.stalled_seconds() >= 2.0
        # An outage is no reason to restart the pod: liveness stays green.
        r = await internal.get("/health/live")
        assert r.status_code == 200, r.text
    finally:
        await internal.aclose()
        await mon.stop()
        await rt.stop()


async def _true(v: bool) -> bool:
    return v

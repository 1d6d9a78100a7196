"""A dispatch loop that fails every cycle for a bug (not an outage) is stalled: the gauge shows
it, and after DIALBACK_MONITOR_STALL_SECONDS liveness fails so the pod is restarted."""

from __future__ import annotations

from typing import Any

import httpx
from testbed.metrics_parse import parse, value

from dialback.app import create_internal_app
from dialback.container import Container
from tests.support.factories import insert_due_callbacks, tenant_and_service
from tests.support.stack import make_settings, wait_for


async def test_a_loop_failing_for_a_bug_is_stalled_and_fails_liveness(tmp_path: Any) -> None:
    c = Container(
        make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/dialback.db",
            data_dir=str(tmp_path),
            simulator="off",
            monitor_stall_seconds=1.0,
        )
    )
    mon = c.monitor
    assert mon is not None

    async def broken(dispatches: list[Any]) -> list[bool]:
        raise RuntimeError("simulated bug in the publish path")

    c.transport.publish = broken  # type: ignore[method-assign]
    internal = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_internal_app(c)), base_url="http://i"
    )
    await c.start()
    try:
        tenant_id, service_id = await tenant_and_service(c.engine)
        await insert_due_callbacks(c.engine, tenant_id, service_id, 1)
        c.wake_monitor()

        async def stalled() -> bool:
            return mon.stalled_seconds() > 0

        await wait_for(stalled, timeout=5)
        assert (await internal.get("/health/live")).status_code == 200  # not yet 1 s

        async def live_fails() -> bool:
            return (await internal.get("/health/live")).status_code == 503

        await wait_for(live_fails, timeout=6)
        body = (await internal.get("/health/live")).json()
        assert body["status"] == "stuck" and body["monitorStalledSeconds"] >= 1.0
        assert value(parse(c.metrics.registry.render()), "ges_monitor_dispatch_stalled_seconds") > 0
        assert mon.healthy  # the loop itself runs on: a restart is liveness's call
    finally:
        await internal.aclose()
        await c.stop()

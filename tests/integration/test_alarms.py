"""Each GES alarm counter increments on its real trigger in dialback."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis
from testbed.metrics_parse import parse, value

from dialback.services.schemas import ServiceConfig
from tests.support.factories import insert_due_callbacks
from tests.support.stack import SettingsFactory, Stack, started_stack, wait_for


async def scrape(stack: Stack) -> dict:
    return parse((await stack.internal.get("/metrics")).text)


async def alarm(stack: Stack, name: str, **labels: str) -> float:
    v = value(await scrape(stack), name, **labels)
    assert v is not None, f"{name}{labels} not exposed"
    return v


async def test_oversized_body_counts_invalid_content_length(stack: Stack) -> None:
    key = await stack.tenant()
    before = await alarm(stack, "INVALID_CONTENT_LENGTH")
    r = await stack.public.post(
        "/engagement/v3/callbacks/create",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"x-api-key": key, "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert await alarm(stack, "INVALID_CONTENT_LENGTH") == before + 1


async def test_tenant_and_number_limits_count_per_tenant(stack: Stack) -> None:
    cfg = ServiceConfig.model_validate(
        {"businessHours": {"alwaysOpen": True}, "throttle": {"maxOpenPerNumber": 1}}
    )
    key = await stack.tenant(
        "busy", config=cfg, settings={"throttle": {"maxCallbacks": 3, "windowSeconds": 3600}}
    )
    h = {"x-api-key": key}
    await stack.rt.simulator.stop()  # keep callbacks open so the per-number limit applies
    body = {"serviceName": "sales", "phoneNumber": "+14155550100"}
    assert (
        await stack.public.post("/engagement/v3/callbacks/create", json=body, headers=h)
    ).status_code == 200
    assert await alarm(stack, "CB_ENQUEUE_LIMIT_REACHED", tenant="busy") == 0
    r = await stack.public.post("/engagement/v3/callbacks/create", json=body, headers=h)
    assert r.status_code == 429 and "phoneNumber" in r.json()["status"]["message"]
    assert await alarm(stack, "CB_ENQUEUE_LIMIT_REACHED", tenant="busy") == 1
    for n in (1, 2):
        body = {"serviceName": "sales", "phoneNumber": f"+1415555020{n}"}
        assert (
            await stack.public.post("/engagement/v3/callbacks/create", json=body, headers=h)
        ).status_code == 200
    assert await alarm(stack, "CB_TTL_LIMIT_REACHED", tenant="busy") == 0
    body = {"serviceName": "sales", "phoneNumber": "+14155550299"}
    r = await stack.public.post("/engagement/v3/callbacks/create", json=body, headers=h)
    assert r.status_code == 429
    assert await alarm(stack, "CB_TTL_LIMIT_REACHED", tenant="busy") == 1


async def test_late_dispatch_counts_monitor_lagging_behind(stack: Stack) -> None:
    await stack.tenant()
    from tests.support.factories import tenant_and_service

    tenant_id, service_id = await tenant_and_service(stack.rt.engine, "late")
    before = await alarm(stack, "MONITOR_LAGGING_BEHIND")
    # Three callbacks that fell due 30 s ago (as after an outage): each is dispatched late.
    await insert_due_callbacks(stack.rt.engine, tenant_id, service_id, 3, due_at=time.time() - 30)
    await insert_due_callbacks(stack.rt.engine, tenant_id, service_id, 2)

    async def counted() -> bool:
        return await alarm(stack, "MONITOR_LAGGING_BEHIND") == before + 3

    await wait_for(counted, timeout=10)
    samples = await scrape(stack)
    assert value(samples, "ges_dispatch_lateness_seconds_count") >= 5
    assert value(samples, "ges_dispatch_lateness_seconds_bucket", le="1") >= 2


async def test_routing_provisioning_failure_counts_rbac_create_vq_proxy_error(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    settings = settings_with(
        simulator="off",
        routing_stream="BrokenStream",
    )
    client = aioredis.from_url(routing_redis_url, decode_responses=True)
    await client.set("BrokenStream", "not a stream")  # XGROUP CREATE now fails with WRONGTYPE
    try:
        async with started_stack(settings) as stack:
            await stack.internal.post("/admin/v1/tenants", json={"name": "prov"})
            before = await alarm(stack, "RBAC_CREATE_VQ_PROXY_ERROR")
            for i in range(6):
                r = await stack.internal.put(
                    f"/admin/v1/tenants/prov/services/vq{i}",
                    json={"businessHours": {"alwaysOpen": True}},
                )
                assert r.status_code == 201, r.text
                assert r.json()["data"]["routingProvisioned"] is False
            assert await alarm(stack, "RBAC_CREATE_VQ_PROXY_ERROR") >= before + 6
            await client.delete("BrokenStream")
            r = await stack.internal.put(
                "/admin/v1/tenants/prov/services/vq0", json={"businessHours": {"alwaysOpen": True}}
            )
            assert r.json()["data"]["routingProvisioned"] is True
    finally:
        await client.aclose()


async def test_unexpected_error_is_a_500_envelope_and_counts_uncaught_exception(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await stack.tenant()
    from dialback.callbacks.service import CallbackService

    async def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(CallbackService, "open_for", broken)
    before = await alarm(stack, "UNCAUGHT_EXCEPTION")
    r = await stack.public.get(
        "/engagement/v3/callbacks/open-for/sales", headers={"x-api-key": key}
    )
    assert r.status_code == 500
    body = r.json()
    assert body["status"]["corrId"] == r.headers["x-correlation-id"]
    assert "simulated bug" not in r.text  # internals are not leaked to the client
    assert await alarm(stack, "UNCAUGHT_EXCEPTION") == before + 1
    assert (
        value(await scrape(stack), "ges_http_failed_requests_total", httpCode="500", tenant="acme")
        == 1
    )


async def test_new_tenant_and_service_series_exist_at_zero(stack: Stack) -> None:
    assert (
        await stack.internal.post("/admin/v1/tenants", json={"name": "fresh"})
    ).status_code == 201
    r = await stack.internal.put(
        "/admin/v1/tenants/fresh/services/care", json={"businessHours": {"alwaysOpen": True}}
    )
    assert r.status_code == 201
    samples = await scrape(stack)
    assert value(samples, "CB_TTL_LIMIT_REACHED", tenant="fresh") == 0
    assert value(samples, "CB_ENQUEUE_LIMIT_REACHED", tenant="fresh") == 0
    assert value(samples, "ges_callbacks_created", tenant="fresh", service="care") == 0


@pytest.mark.slow
async def test_a_routing_outage_counts_each_callback_once_and_no_provisioning_error(
    pg_url: str, redis_url: str
) -> None:
    """CB_SUBMIT_FAILED counts a callback once however often its publish is retried, and an
    unreachable routing Redis is not a provisioning failure (RBAC_CREATE_VQ_PROXY_ERROR)."""
    import sqlalchemy as sa
    from testbed.servers import RedisServer

    from dialback.db.schema import callbacks
    from tests.support.factories import tenant_and_service
    from tests.support.stack import make_settings

    routing = RedisServer().start()
    try:
        settings = make_settings(
            database_url=pg_url,
            redis_url=redis_url,
            routing_redis_url=routing.url,
            simulator="on",
            health_check_min_seconds=0.2,
            health_check_max_seconds=0.3,
        )
        async with started_stack(settings) as stack:
            engine = stack.rt.engine
            tenant_id, service_id = await tenant_and_service(engine, "outage")
            submit0 = await alarm(stack, "CB_SUBMIT_FAILED")
            rbac0 = await alarm(stack, "RBAC_CREATE_VQ_PROXY_ERROR")
            routing.stop()
            ids = await insert_due_callbacks(engine, tenant_id, service_id, 25)
            cycles0 = value(await scrape(stack), "ges_monitor_cycle_duration_seconds_count")

            async def retried_for_a_while() -> bool:
                samples = await scrape(stack)
                cycles = value(samples, "ges_monitor_cycle_duration_seconds_count")
                return value(samples, "CB_SUBMIT_FAILED") > submit0 and cycles >= cycles0 + 6

            await wait_for(retried_for_a_while, timeout=20)
            # Every publish of the batch failed, again and again: each callback counted once.
            assert await alarm(stack, "CB_SUBMIT_FAILED") == submit0 + 25
            # The outcome loop kept failing to read for seconds; it provisioned nothing.
            assert await alarm(stack, "RBAC_CREATE_VQ_PROXY_ERROR") == rbac0
            routing.start()  # empty: its groups are gone and are provisioned again

            async def all_dispatched() -> bool:
                async with engine.connect() as conn:
                    left = await conn.scalar(
                        sa.select(sa.func.count())
                        .select_from(callbacks)
                        .where(callbacks.c.id.in_(ids), callbacks.c.state == "SCHEDULED")
                    )
                return left == 0

            await wait_for(all_dispatched, timeout=30)
            assert await alarm(stack, "CB_SUBMIT_FAILED") == submit0 + 25
            assert await alarm(stack, "RBAC_CREATE_VQ_PROXY_ERROR") == rbac0
    finally:
        routing.discard()

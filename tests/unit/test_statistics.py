"""StatisticsService on SQLite (issue #10, finding 10): per-queue counts, completions by reason,
EWT, consumers, and GES's cache semantics (max-age 15 to 300 seconds)."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from dialback.db.schema import callbacks
from dialback.kit.errors import BadRequest
from dialback.statistics import views
from dialback.statistics.endpoints import parse_max_age
from dialback.statistics.service import StatisticsService
from dialback.tenants.repository import Tenant
from tests.support.public_api import config
from tests.unit.test_callback_service import Desk, desk, phone, template_db  # noqa: F401


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def stats(d: Desk, clock: Clock) -> StatisticsService:
    return StatisticsService(d.engine, d.service.service_cache, d.transport, d.service, clock)


async def completed(d: Desk, tenant: Tenant, reasons: list[str], at: float) -> None:
    svc = await d.service.require_service(tenant, "sales")
    async with d.engine.begin() as conn:
        for i, reason in enumerate(reasons):
            await conn.execute(
                callbacks.insert().values(
                    id=f"00000000-0000-4000-8000-{i:012d}",
                    tenant_id=tenant.id,
                    service_id=svc.id,
                    service_name="sales",
                    phone_number=phone(100 + i),
                    state="COMPLETED",
                    reason=reason,
                    offer_type="ASAP",
                    due_at=at - 300,
                    language="en-US",
                    user_data={},
                    params={},
                    created_at=at - 300,
                    updated_at=at - i,
                    queued_at=at - 200,
                    routed_at=at - 100 if reason != "cancelled" else None,
                    completed_at=at - i,
                )
            )


async def test_per_queue_counts_completions_ewt_and_consumers(desk: Desk) -> None:  # noqa: F811
    t = await desk.tenant(cfg=config(throttle={"maxOpenPerNumber": 10}))
    await desk.tenant(service="support")
    for i in range(3):
        await desk.create(t, number=phone(i))  # immediate: SCHEDULED until the monitor runs
    async with desk.engine.begin() as conn:
        await conn.execute(
            sa.update(callbacks).where(callbacks.c.phone_number == phone(0)).values(state="QUEUED")
        )
    clock = Clock()
    await completed(desk, t, ["answered", "answered", "busy", "cancelled"], clock.now)
    await completed_old(desk, t, clock.now - 7200)
    await desk.transport.heartbeat("engine-1")
    snap = await stats(desk, clock).statistics(t, None, window_seconds=3600, max_age=15)
    data = views.statistics(snap, 0)
    assert data["activeConsumers"] == 1 and data["windowSeconds"] == 3600
    assert data["truncated"] is False
    sales, support = data["virtualQueues"]
    assert sales["virtualQueue"] == "sales" and support["virtualQueue"] == "support"
    assert sales["callbacks"] == {"scheduled": 2, "queued": 1, "routing": 0, "processing": 0}
    assert sales["completed"] == {
        "answered": 2,
        "no-answer": 0,
        "busy": 1,
        "failed": 0,
        "cancelled": 1,
    }
    assert sales["resultCode"] == 0 and sales["estimatedWaitTime"] >= 0
    assert support["callbacks"] == {"scheduled": 0, "queued": 0, "routing": 0, "processing": 0}
    assert support["resultCode"] == -1  # no interactions yet
    named = await stats(desk, clock).statistics(
        t, ["support", "ghost"], window_seconds=3600, max_age=15
    )
    ghost = views.statistics(named, 0)["virtualQueues"][1]
    assert ghost == {
        "virtualQueue": "ghost",
        "estimatedWaitTime": -1,
        "message": "unknown virtual queue",
        "resultCode": -1,
    }


async def completed_old(d: Desk, tenant: Tenant, at: float) -> None:
    """One completion outside a one-hour window."""
    svc = await d.service.require_service(tenant, "sales")
    async with d.engine.begin() as conn:
        await conn.execute(
            callbacks.insert().values(
                id="00000000-0000-4000-8000-999999999999",
                tenant_id=tenant.id,
                service_id=svc.id,
                service_name="sales",
                phone_number=phone(999),
                state="COMPLETED",
                reason="failed",
                offer_type="ASAP",
                due_at=at,
                language="en-US",
                user_data={},
                params={},
                created_at=at,
                updated_at=at,
                completed_at=at,
            )
        )


async def test_a_snapshot_is_reused_within_max_age_and_never_past_five_minutes(
    desk: Desk,  # noqa: F811
) -> None:
    t = await desk.tenant()
    clock = Clock()
    service = stats(desk, clock)

    async def scheduled(max_age: int) -> int:
        snap = await service.statistics(t, ["sales"], window_seconds=3600, max_age=max_age)
        counts = snap.queues[0].counts
        assert counts is not None
        return counts["SCHEDULED"]

    assert await scheduled(15) == 0
    await desk.create(t)
    clock.now += 10
    assert await scheduled(15) == 0  # 10 s old: cached
    assert await scheduled(5) == 0  # below GES's minimum of 15: as 15
    clock.now += 6
    assert await scheduled(15) == 1  # 16 s old: queried again
    await desk.create(t, number=phone(2))
    clock.now += 200
    assert await scheduled(3600) == 1  # 200 s old, within max-age and the 5 minutes
    clock.now += 101
    assert await scheduled(3600) == 2  # past 5 minutes: never served


async def test_concurrent_requests_share_one_query(desk: Desk) -> None:  # noqa: F811
    t = await desk.tenant()
    service = stats(desk, Clock())
    calls = 0
    compute = service._compute

    async def counted(*args: object) -> object:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return await compute(*args)  # type: ignore[arg-type]

    service._compute = counted  # type: ignore[method-assign,assignment]
    got = await asyncio.gather(
        *(service.statistics(t, None, window_seconds=3600, max_age=15) for _ in range(10))
    )
    assert calls == 1 and len({id(s) for s in got}) == 1


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (None, 15),
        ("max-age=15", 15),
        ("max-age=60", 60),
        ("MAX-AGE = 42, private", 42),
        ('max-age="30"', 30),
        ("max-age=0", 15),
        ("max-age=86400", 300),
        ("no-cache", 15),
    ],
)
def test_max_age(header: str | None, want: int) -> None:
    assert parse_max_age(header) == want


@pytest.mark.parametrize("header", ["max-age=soon", "max-age=-1", "max-age=", "max-age=1.5"])
def test_a_malformed_max_age_is_400(header: str) -> None:
    with pytest.raises(BadRequest, match="cache-control: max-age must be a whole number"):
        parse_max_age(header)

"""Direct-to-store helpers for tests that need many callbacks quickly."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.callbacks.schemas import CreateCallback
from dialback.container import Container
from dialback.db.schema import callbacks
from dialback.services import repository as services_repo
from dialback.services.schemas import ServiceConfig
from dialback.tenants import repository as tenants_repo


async def tenant_and_service(
    engine: AsyncEngine, name: str = "bulk", service: str = "sales"
) -> tuple[str, str]:
    """Create a tenant with an always-open service; return (tenant_id, service_id)."""
    async with engine.begin() as conn:
        t = await tenants_repo.create_tenant(conn, name, {})
        cfg = ServiceConfig.model_validate({"businessHours": {"alwaysOpen": True}})
        s = await services_repo.create_service(conn, t.id, service, cfg)
    return t.id, s.id


async def insert_due_callbacks(
    engine: AsyncEngine,
    tenant_id: str,
    service_id: str,
    n: int,
    *,
    due_at: float | None = None,
    service_name: str = "sales",
    **overrides: Any,
) -> list[str]:
    """Insert ``n`` SCHEDULED callbacks due at ``due_at`` (default: now); return their ids."""
    now = time.time()
    due = now if due_at is None else due_at
    rows = []
    for i in range(n):
        row = {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant_id,
            "service_id": service_id,
            "service_name": service_name,
            "phone_number": f"+1415555{i % 10000:04d}",
            "state": "SCHEDULED",
            "offer_type": "SCHEDULED",
            "desired_time": due,
            "due_at": due,
            "slot_start": None,
            "priority": 0,
            "language": "en-US",
            "user_data": {},
            "params": {},
            "attempt": 1,
            "max_attempts": 3,
            "created_at": now,
            "updated_at": now,
        }
        row.update(overrides)
        rows.append(row)
    async with engine.begin() as conn:
        for start in range(0, n, 1000):
            await conn.execute(callbacks.insert(), rows[start : start + 1000])
    return [r["id"] for r in rows]


SLOTTED_SERVICE: dict[str, Any] = {
    "businessHours": {"alwaysOpen": True},
    "capacity": {"slotMinutes": 60, "defaultCapacity": 1},
    "validation": {"defaultCountry": "US", "blockedPatterns": ["^\\+1900"]},
}
"""An always-open service of one place per hour slot, numbers from the US, +1900 blocked."""


async def add_tenant(rt: Container, name: str, service: str = "sales") -> None:
    """A tenant with one always-open service of one place per hour slot."""
    async with rt.engine.begin() as conn:
        t = await tenants_repo.create_tenant(conn, name, {})
        await services_repo.create_service(
            conn, t.id, service, ServiceConfig.model_validate(SLOTTED_SERVICE)
        )


async def book(rt: Container, tenant: str, phone: str, at: float | None = None) -> str:
    """A callback booked through the service (as the API would)."""
    async with rt.engine.connect() as conn:
        t = await tenants_repo.get_tenant_by_name(conn, tenant)
    assert t is not None
    body: dict[str, Any] = {"serviceName": "sales", "phoneNumber": phone, "userData": {"k": "v"}}
    if at is not None:
        body["desiredTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    return await rt.callbacks.create(t, CreateCallback.model_validate(body))


def next_slot(hours: int = 2) -> float:
    """The start of an hour slot ``hours`` from now."""
    return (int(time.time() // 3600) + hours) * 3600.0

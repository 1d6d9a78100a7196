"""CallInService on SQLite and in-memory counters: rotation, access codes, expiry, the match."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.callins.schemas import CallInGroupConfig, CreateCallIn, MatchIn
from dialback.callins.service import CallInService
from dialback.callins.views import created_out, request_out
from dialback.db.engine import create_engine
from dialback.db.migrations import migrate
from dialback.kit.errors import BadRequest, NotFound
from dialback.observability.events import Events
from dialback.tenants import repository as tenants_repo
from dialback.tenants.repository import Tenant
from dialback.throttle.counters import MemoryCounters

POOL = ["+14155550100", "+14155550101", "+14155550102"]
NOW = 1_800_000_000.25


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/callins.db")
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def tenant(engine: AsyncEngine) -> Tenant:
    async with engine.begin() as conn:
        return await tenants_repo.create_tenant(conn, "acme", {})


class RecordingEvents(Events):
    """Events that remember the call-ins created."""

    def __init__(self) -> None:
        super().__init__()
        self.callins: list[str] = []

    def callin_created(self, tenant: Tenant) -> None:
        self.callins.append(tenant.name)


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def svc(engine: AsyncEngine, events: Events) -> CallInService:
    return CallInService(engine, MemoryCounters(), events)


def group(**extra: object) -> CallInGroupConfig:
    return CallInGroupConfig.model_validate({"numbers": POOL, **extra})


def ask(**body: object) -> CreateCallIn:
    return CreateCallIn.model_validate({"groupName": "sales", **body})


async def test_requests_rotate_over_the_pool_with_unique_codes_and_whole_second_expiry(
    svc: CallInService, tenant: Tenant, events: RecordingEvents
) -> None:
    _, created = await svc.put_group("acme", "sales", group(expirySeconds=120))
    assert created
    reqs = [await svc.create_request(tenant, ask(), now=NOW) for _ in range(4)]
    assert [r.to_phone_number for r in reqs] == [*POOL, POOL[0]]
    assert all(r.access_code is not None and len(r.access_code) == 6 for r in reqs)
    out = created_out(reqs[0])
    assert out["expirationTime"] == 1_800_000_120 and out["groupName"] == "sales"
    assert list(out) == [
        "id",
        "toPhoneNumber",
        "groupName",
        "expirationTime",
        "accessCode",
        "fromPhoneNumber",
        "callbackServiceId",
    ]
    assert events.callins == ["acme"] * 4


async def test_match_claims_once_and_not_after_expiry(svc: CallInService, tenant: Tenant) -> None:
    await svc.put_group("acme", "sales", group(expirySeconds=60))
    req = await svc.create_request(tenant, ask(), now=NOW)
    body = MatchIn.model_validate(
        {"toPhoneNumber": req.to_phone_number, "accessCode": req.access_code}
    )
    with pytest.raises(NotFound):
        await svc.match_request(body, now=NOW + 61)  # expired
    matched = await svc.match_request(body, now=NOW + 5)
    assert matched.id == req.id and matched.tenant_name == "acme"
    out = request_out(matched, NOW + 5)
    assert out["state"] == "MATCHED" and out["matchedAt"] is not None
    with pytest.raises(NotFound, match="with that access code"):
        await svc.match_request(body, now=NOW + 6)


async def test_groups_without_codes_need_and_match_the_callers_number(
    svc: CallInService, tenant: Tenant
) -> None:
    await svc.put_group("acme", "sales", group(accessCode={"enabled": False}))
    with pytest.raises(BadRequest, match="fromPhoneNumber: required"):
        await svc.create_request(tenant, ask(), now=NOW)
    req = await svc.create_request(tenant, ask(fromPhoneNumber="(415) 555-0199"), now=NOW)
    assert req.access_code is None and req.from_phone_number == "+14155550199"
    body = MatchIn.model_validate(
        {"toPhoneNumber": req.to_phone_number, "fromPhoneNumber": "+14155550199"}
    )
    assert (await svc.match_request(body, now=NOW + 1)).id == req.id


async def test_groups_put_get_list_delete(svc: CallInService, tenant: Tenant) -> None:
    first, created = await svc.put_group("acme", "sales", group())
    again, created_again = await svc.put_group("acme", "sales", group(expirySeconds=300))
    assert created and not created_again and again.id == first.id
    assert (await svc.get_group("acme", "sales")).config.expiry_seconds == 300
    assert [g.name for g in await svc.list_groups("acme")] == ["sales"]
    await svc.delete_group("acme", "sales")
    with pytest.raises(NotFound, match="no call-in group named 'sales' for tenant 'acme'"):
        await svc.get_group("acme", "sales")
    with pytest.raises(NotFound, match="no tenant named 'nobody'"):
        await svc.list_groups("nobody")
    with pytest.raises(BadRequest, match="tenant: no tenant named 'nobody'"):
        await svc.list_requests("nobody", None, 10, 0)

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
from dialback.kit.errors import BadRequest, NotFound, TooManyRequests
from dialback.observability.events import Events
from dialback.settings import Settings
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
        self.throttled: list[str] = []

    def callin_created(self, tenant: Tenant) -> None:
        self.callins.append(tenant.name)

    def tenant_throttled(self, tenant: Tenant) -> None:
        self.throttled.append(tenant.name)


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def svc(engine: AsyncEngine, events: Events) -> CallInService:
    return CallInService(engine, MemoryCounters(), events, Settings())


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


# --- GES client compatibility (issue #10, finding 3): the SDKs parse accessCode as a Number ----


async def test_access_codes_survive_a_numeric_round_trip(
    svc: CallInService, tenant: Tenant
) -> None:
    await svc.put_group("acme", "sales", group(accessCode={"length": 4}))
    reqs = [await svc.create_request(tenant, ask(), now=NOW) for _ in range(60)]
    for req in reqs:
        out = created_out(req)
        assert isinstance(out["accessCode"], int) and not isinstance(out["accessCode"], bool)
        # What a client that parsed the number sends back is exactly the stored code.
        assert str(out["accessCode"]) == req.access_code and 1000 <= out["accessCode"] <= 9999


@pytest.mark.parametrize("as_number", [True, False])
async def test_match_takes_the_code_as_a_number_or_a_string(
    svc: CallInService, tenant: Tenant, as_number: bool
) -> None:
    await svc.put_group("acme", "sales", group())
    req = await svc.create_request(tenant, ask(), now=NOW)
    assert req.access_code is not None
    code: object = int(req.access_code) if as_number else req.access_code
    body = MatchIn.model_validate({"toPhoneNumber": req.to_phone_number, "accessCode": code})
    assert (await svc.match_request(body, now=NOW + 1)).id == req.id


@pytest.mark.parametrize("code", [True, -1, 10**12, 1.5, "12a", "", "1234567890123", [1]])
def test_match_refuses_codes_that_are_not_digits(code: object) -> None:
    with pytest.raises(ValueError, match="must be a number or a string of 1 to 12 digits"):
        MatchIn.model_validate({"toPhoneNumber": POOL[0], "accessCode": code})


async def _stored_leading_zero_code(engine: AsyncEngine, tenant: Tenant) -> None:
    """A request handed out before codes were drawn without a leading zero."""
    from dialback.callins import repository as repo

    async with engine.begin() as conn:
        await repo.insert_request(
            conn,
            {
                "id": "00000000-0000-4000-8000-000000000047",
                "tenant_id": tenant.id,
                "group_id": "g",
                "group_name": "sales",
                "to_phone_number": POOL[0],
                "from_phone_number": None,
                "access_code": "047334",
                "user_data": {},
                "callback_service_id": None,
                "created_at": NOW,
                "expires_at": NOW + 900,
            },
        )


@pytest.mark.parametrize("sent", [47334, "47334", "047334"])
async def test_an_older_code_with_a_leading_zero_matches_until_it_expires(
    svc: CallInService, engine: AsyncEngine, tenant: Tenant, sent: object
) -> None:
    await _stored_leading_zero_code(engine, tenant)
    body = MatchIn.model_validate({"toPhoneNumber": POOL[0], "accessCode": sent})
    with pytest.raises(NotFound):
        await svc.match_request(body, now=NOW + 901)
    assert (await svc.match_request(body, now=NOW + 1)).access_code == "047334"
    with pytest.raises(NotFound):  # once
        await svc.match_request(body, now=NOW + 2)
    wrong = MatchIn.model_validate({"toPhoneNumber": POOL[0], "accessCode": 473340})
    with pytest.raises(NotFound):
        await svc.match_request(wrong, now=NOW + 1)


async def test_a_new_code_never_equals_an_open_older_code_numerically(
    svc: CallInService, engine: AsyncEngine, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialback.callins import service as callin_service

    await _stored_leading_zero_code(engine, tenant)
    await svc.put_group("acme", "sales", group(numbers=[POOL[0]], accessCode={"length": 5}))
    draws = iter(["47334", "51111"])
    monkeypatch.setattr(callin_service, "access_code", lambda length: next(draws))
    req = await svc.create_request(tenant, ask(), now=NOW)
    assert req.access_code == "51111"


async def test_a_tenant_over_its_call_in_limit_is_refused_per_window_and_alone(
    engine: AsyncEngine, tenant: Tenant, events: RecordingEvents
) -> None:
    svc = CallInService(
        engine,
        MemoryCounters(),
        events,
        Settings(callin_max_per_window=3, callin_window_seconds=60),
    )
    async with engine.begin() as conn:
        other = await tenants_repo.create_tenant(conn, "globex", {"throttle": {"maxCallIns": 5}})
    await svc.put_group("acme", "sales", group())
    await svc.put_group("globex", "sales", group())
    start = 60 * (NOW // 60)
    served = [await svc.create_request(tenant, ask(), now=start + i) for i in range(3)]
    for _ in range(2):
        with pytest.raises(TooManyRequests, match="limit of 3 call-in requests per 60 s window"):
            await svc.create_request(tenant, ask(), now=start + 10)
    # Refused requests take no turn: the rotation goes on where it stopped.
    later = await svc.create_request(tenant, ask(), now=start + 60)
    assert [r.to_phone_number for r in [*served, later]] == [*POOL, POOL[0]]
    # Another tenant has its own window and its own limit (settings.throttle.maxCallIns).
    for _ in range(5):
        await svc.create_request(other, ask(), now=start + 10)
    with pytest.raises(TooManyRequests, match="'globex' has reached its limit of 5"):
        await svc.create_request(other, ask(), now=start + 10)
    assert events.throttled == ["acme", "acme", "globex"]
    assert events.callins == ["acme"] * 4 + ["globex"] * 5

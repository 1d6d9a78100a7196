"""Every operation of Genesys' Java and JavaScript Engagement clients, run against dialback.

Each test sends exactly what the SDK puts on the wire (its defaults, its date, number and query
forms, its headers: ``sdk_models``) to the real stack (PostgreSQL, Redis, the in-process
routing simulator) and checks that the answer parses under that SDK's types (``checker``), for
the success answer and for every documented error status. Nothing here is loosened to fit
dialback: where dialback and the SDKs disagree, the test fails and names the field.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest

from dialback.services.schemas import ServiceConfig
from tests.contract import sdk_models as sdk
from tests.contract.checker import check
from tests.contract.sdk_models import JAVA, JS, OPERATIONS, Sdk
from tests.support.stack import SettingsFactory, Stack, started_stack, wait_for

API = "/engagement/v3"
NY = "America/New_York"
ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UNKNOWN_ID = "8c78d4e1-c85a-424b-8334-5ff36e07372f"
GROUP_NUMBERS = ["+14155550100", "+14155550101"]


# --- what each client sends ----------------------------------------------------------------------


class Client:
    """One SDK's way of calling: its body serialiser, query forms and headers."""

    def __init__(self, label: str, kit: Sdk, body: Callable[..., dict[str, Any]]) -> None:
        self.label = label
        self.sdk = kit
        self.body = body
        self.query = sdk.java_query if kit is JAVA else sdk.js_query

    def __repr__(self) -> str:
        return self.label


JAVA_CLIENT = Client("java", JAVA, sdk.java_body)
JS_CLIENT = Client("js", JS, sdk.js_body)
JS_WITH_DOCUMENTED_DEFAULTS = Client(
    "js+documented-defaults",
    JS,
    lambda model, **f: sdk.js_body(model, with_documented_defaults=True, **f),
)
CLIENTS = [JAVA_CLIENT, JS_CLIENT]
CREATE_CLIENTS = [JAVA_CLIENT, JS_CLIENT, JS_WITH_DOCUMENTED_DEFAULTS]


async def call(
    stack: Stack,
    client: Client,
    key: str,
    op_key: str,
    *,
    path: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Send ``op_key`` the way ``client``'s SDK does."""
    op = OPERATIONS[op_key]
    url = op.path
    for name, value in (path or {}).items():
        url = url.replace("{" + name + "}", quote(value, safe=""))
    params = {k: client.query(v) for k, v in (query or {}).items() if v is not None}
    sent = {**client.sdk.headers, "x-api-key": key, **(headers or {})}
    content = b"" if body is None else json.dumps(body).encode()
    return await stack.public.request(
        op.method, API + url, params=params, headers=sent, content=content
    )


def parsed(client: Client, op_key: str, r: httpx.Response, status: int) -> dict[str, Any]:
    """Assert ``r`` has ``status`` and parses as the SDK's model for it; return the body."""
    assert r.status_code == status, r.text
    op = OPERATIONS[op_key]
    # Statuses without an SDK model of their own (401 outside statistics, dialback's 404 for an
    # unknown service in a path) answer the same envelope: read them as the op's 400 model.
    model = op.responses.get(status) or op.responses[400]
    body: dict[str, Any] = r.json()
    problems = check(client.sdk, model, body)
    assert not problems, f"{client.label} cannot read {model}: " + "; ".join(map(str, problems))
    assert body["status"]["code"] == status
    return body


# --- the stack -----------------------------------------------------------------------------------


def _cfg(**kw: Any) -> ServiceConfig:
    kw.setdefault("businessHours", {"alwaysOpen": True, "timezone": NY})
    return ServiceConfig.model_validate(kw)


OFFICE_HOURS = {d: [{"start": "09:00", "end": "17:00"}] for d in ALL_DAYS}


async def provision(stack: Stack) -> str:
    """Tenant ``acme`` with the services and call-in group the tests use; its API key."""
    await stack.tenant("acme", service="sales", config=_cfg(capacity={"defaultCapacity": 5}))
    await stack.tenant("acme", service="tight", config=_cfg(capacity={"defaultCapacity": 1}))
    office = _cfg(businessHours={"timezone": NY, "weekly": OFFICE_HOURS})
    key = await stack.tenant("acme", service="office", config=office)
    r = await stack.internal.put(
        "/admin/v1/tenants/acme/callin-groups/support",
        json={"numbers": GROUP_NUMBERS, "accessCode": {"enabled": True, "length": 6}},
    )
    assert r.status_code in (200, 201), r.text
    return key


def phone(i: int) -> str:
    return f"+1415555{i:04d}"


def next_slot_in(hours: int) -> datetime:
    """A half-hour boundary at least ``hours`` from now, in UTC."""
    t = datetime.now(UTC) + timedelta(hours=hours)
    return t.replace(minute=30 if t.minute < 30 else 0, second=0, microsecond=0) + (
        timedelta(hours=1) if t.minute >= 30 else timedelta()
    )


def tomorrow_in(tz: str, hhmm: str) -> datetime:
    zone = ZoneInfo(tz)
    day = datetime.now(zone).date() + timedelta(days=1)
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, h, m, tzinfo=zone)


async def created_id(stack: Stack, key: str, service: str = "sales", **fields: Any) -> str:
    """Book a callback for a test whose subject is another operation.

    Booked as the JS client does (it sends no cbOfferType), so that a create problem does not
    hide the problems of the operation under test.
    """
    body = JS_CLIENT.body("CreateCallbackParms", serviceName=service, **fields)
    r = await call(stack, JS_CLIENT, key, "create", body=body)
    assert r.status_code == 200, r.text
    cid: str = r.json()["data"]["id"]
    return cid


# --- create -------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CREATE_CLIENTS, ids=repr)
async def test_create_immediate_with_only_the_required_fields(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    body = client.body("CreateCallbackParms", serviceName="sales", phoneNumber=phone(1))
    parsed(client, "create", await call(stack, client, key, "create", body=body), 200)


@pytest.mark.parametrize("client", CREATE_CLIENTS, ids=repr)
async def test_create_scheduled_in_the_sdk_date_form(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    desired = next_slot_in(3)
    body = client.body(
        "CreateCallbackParms", serviceName="sales", phoneNumber=phone(2), desiredTime=desired
    )
    r = parsed(client, "create", await call(stack, client, key, "create", body=body), 200)
    got = await call(stack, client, key, "retrieve", body={"id": r["data"]["id"]})
    data = parsed(client, "retrieve", got, 200)["data"]
    assert datetime.fromisoformat(data["desiredTime"].replace("Z", "+00:00")) == desired


async def test_create_with_a_java_offset_date_time_in_a_local_offset(stack: Stack) -> None:
    """``OffsetDateTime.now()`` carries the JVM's offset and sub-second digits."""
    key = await provision(stack)
    desired = next_slot_in(4).astimezone(timezone(timedelta(hours=-5))) + timedelta(
        microseconds=123456
    )
    body = sdk.java_body(
        "CreateCallbackParms", serviceName="sales", phoneNumber=phone(3), desiredTime=desired
    )
    assert body["desiredTime"].endswith(".123456-05:00")
    parsed(JAVA_CLIENT, "create", await call(stack, JAVA_CLIENT, key, "create", body=body), 200)


OPTIONAL_FIELDS: dict[str, Any] = {
    "inboundVQ": "sales_inbound",
    "offerThreshold": 120,
    "channel": "web",
    "offerTiming": "ON-HOURS",
    "cbOriginationIxnId": "0123456789ABCDEF",
    "surveyRP": "7100",
    "priority": 5,
    "routePoint": "7001",
    "pushTargets": [{"channel": "FCM", "target": "fcm-token-7f3a"}],
    "userData": {"email": "joe@example.com", "tier": "gold"},
}


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_create_with_every_optional_field_keeps_them(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    fields = dict(OPTIONAL_FIELDS)
    if client.sdk is JAVA:
        fields["alwaysCheckCapacity"] = False
    body = client.body("CreateCallbackParms", serviceName="sales", phoneNumber=phone(4), **fields)
    r = parsed(client, "create", await call(stack, client, key, "create", body=body), 200)
    detail = await stack.internal.get(f"/admin/v1/callbacks/{r['data']['id']}")
    assert detail.status_code == 200, detail.text
    for value in ("fcm-token-7f3a", "7001", "sales_inbound", "7100", "0123456789ABCDEF"):
        assert value in detail.text, f"{value!r} was sent but the callback does not keep it"


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_create_with_nested_user_data(stack: Stack, client: Client) -> None:
    """userData is ``Map<String, Object>`` (Java) / a hash map (JS): values may be objects."""
    key = await provision(stack)
    nested = {"customer": {"tier": "gold", "orders": [101, 102]}, "tags": ["vip", "new"]}
    body = client.body(
        "CreateCallbackParms", serviceName="sales", phoneNumber=phone(11), userData=nested
    )
    parsed(client, "create", await call(stack, client, key, "create", body=body), 200)


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_create_refusals_are_the_documented_400(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    past = datetime(2020, 1, 1, tzinfo=UTC)
    for field, fields in (
        ("serviceName", {"serviceName": "nope", "phoneNumber": phone(5)}),
        ("phoneNumber", {"serviceName": "sales", "phoneNumber": "12"}),
        ("desiredTime", {"serviceName": "sales", "phoneNumber": phone(5), "desiredTime": past}),
    ):
        body = client.body("CreateCallbackParms", **fields)
        r = parsed(client, "create", await call(stack, client, key, "create", body=body), 400)
        assert r["status"]["message"].startswith(f"{field}: "), r["status"]["message"]


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_full_slot_answers_a_429_the_sdk_can_read(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    desired = next_slot_in(5)
    await created_id(stack, key, "tight", phoneNumber=phone(6), desiredTime=desired)
    second = client.body(
        "CreateCallbackParms", serviceName="tight", phoneNumber=phone(7), desiredTime=desired
    )
    body = parsed(client, "create", await call(stack, client, key, "create", body=second), 429)
    assert body["data"]["slots"], "a full slot answers proposed slots"


# --- cancel and retrieve ---------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_cancel(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    cid = await created_id(stack, key, phoneNumber=phone(8), desiredTime=next_slot_in(6))
    parsed(client, "cancel", await call(stack, client, key, "cancel", body={"id": cid}), 200)
    missing = await call(stack, client, key, "cancel", body={"id": UNKNOWN_ID})
    parsed(client, "cancel", missing, 404)
    if client.sdk is JS:  # a JS id is any string; Java's is a java.util.UUID
        parsed(client, "cancel", await call(stack, client, key, "cancel", body={"id": ""}), 400)


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_retrieve(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    cid = await created_id(stack, key, phoneNumber=phone(9))
    data = parsed(
        client, "retrieve", await call(stack, client, key, "retrieve", body={"id": cid}), 200
    )
    # CreateCallbackParms: "By default, the desired time is the current time."
    assert data["data"]["desiredTime"] is not None, "an immediate callback's desiredTime"
    missing = await call(stack, client, key, "retrieve", body={"id": UNKNOWN_ID})
    parsed(client, "retrieve", missing, 404)
    if client.sdk is JS:
        parsed(client, "retrieve", await call(stack, client, key, "retrieve", body={"id": ""}), 400)


@pytest.fixture
async def slow_agents(settings_with: SettingsFactory) -> AsyncIterator[Stack]:
    """The stack with agents that keep a call for a minute (callbacks stay PROCESSING)."""
    async with started_stack(settings_with(simulator="on", sim_handle_seconds=60.0)) as s:
        yield s


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_cancel_while_processing_answers_a_documented_status(
    slow_agents: Stack, client: Client
) -> None:
    stack = slow_agents
    key = await provision(stack)
    cid = await created_id(stack, key, phoneNumber=phone(10))

    async def processing() -> bool:
        r = await call(stack, client, key, "retrieve", body={"id": cid})
        return bool(r.json()["data"]["callbackState"] == "PROCESSING")

    await wait_for(processing, timeout=15)
    r = await call(stack, client, key, "cancel", body={"id": cid})
    assert r.status_code in OPERATIONS["cancel"].responses, r.text  # 200, 400 or 404
    parsed(client, "cancel", r, r.status_code)


# --- availability, open-for, queue-status, EWT ------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_availability_in_the_sdk_query_form(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    query = {
        "start": datetime.now(UTC),
        "numberOfDays": 1,
        "timezone": NY,
        "maxTimeSlots": 10,
        "reportBusy": True,
    }
    r = await call(stack, client, key, "availability", path={"service-name": "sales"}, query=query)
    slots = parsed(client, "availability", r, 200)["data"]["slots"]
    assert slots
    bad = await call(
        stack,
        client,
        key,
        "availability",
        path={"service-name": "sales"},
        query={"timezone": "Mars/Base"},
    )
    parsed(client, "availability", bad, 400)


@pytest.fixture
async def short_immediate_window(settings_with: SettingsFactory) -> AsyncIterator[Stack]:
    """The stack with a 1-second immediate window: a desiredTime a minute ago is not "now"."""
    async with started_stack(settings_with(simulator="on", immediate_window_seconds=1)) as s:
        yield s


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_every_offered_slot_is_bookable(
    short_immediate_window: Stack, client: Client
) -> None:
    stack = short_immediate_window
    key = await provision(stack)
    r = await call(
        stack,
        client,
        key,
        "availability",
        path={"service-name": "sales"},
        query={"maxTimeSlots": 3},
    )
    for i, slot in enumerate(parsed(client, "availability", r, 200)["data"]["slots"]):
        body = client.body(
            "CreateCallbackParms",
            serviceName="sales",
            phoneNumber=phone(20 + i),
            desiredTime=datetime.fromisoformat(slot["utcTime"].replace("Z", "+00:00")),
        )
        parsed(client, "create", await call(stack, client, key, "create", body=body), 200)


async def test_availability_start_without_offset_is_in_the_given_timezone(stack: Stack) -> None:
    """AvailabilityApi: "If a timezone is specified, then this must be specified in
    yyyy-MM-ddTHH:mm:ss.SSS format" (a JS caller passes the string as is)."""
    key = await provision(stack)
    # Read as UTC, noon is 07:00 or 08:00 in New York, before opening: the first slot would
    # then be 09:00, not noon.
    noon = tomorrow_in(NY, "12:00")
    query = {"start": noon.strftime("%Y-%m-%dT%H:%M:%S.000"), "timezone": NY, "maxTimeSlots": 1}
    r = await call(
        stack, JS_CLIENT, key, "availability", path={"service-name": "office"}, query=query
    )
    [slot] = parsed(JS_CLIENT, "availability", r, 200)["data"]["slots"]
    assert slot["utcTime"] == sdk.js_datetime(noon)


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_open_for(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    start = tomorrow_in(NY, "16:00")
    r = await call(
        stack, client, key, "open-for", path={"service-name": "office"}, query={"start": start}
    )
    assert parsed(client, "open-for", r, 200)["data"] == {"openFor": 3600}
    bad = await call(
        stack,
        client,
        key,
        "open-for",
        path={"service-name": "office"},
        query={"timezone": "Nowhere"},
    )
    parsed(client, "open-for", bad, 400)


async def test_open_for_start_without_offset_is_in_the_given_timezone(stack: Stack) -> None:
    key = await provision(stack)
    local_start = tomorrow_in(NY, "16:00").strftime("%Y-%m-%dT%H:%M:%S.000")
    r = await call(
        stack,
        JS_CLIENT,
        key,
        "open-for",
        path={"service-name": "office"},
        query={"start": local_start, "timezone": NY},
    )
    assert parsed(JS_CLIENT, "open-for", r, 200)["data"] == {"openFor": 3600}


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_queue_status(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    r = await call(stack, client, key, "queue-status", path={"queue-name": "sales"})
    parsed(client, "queue-status", r, 200)
    too_long = await call(stack, client, key, "queue-status", path={"queue-name": "q" * 101})
    parsed(client, "queue-status", too_long, 400)


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_estimated_wait_time(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    await created_id(stack, key, phoneNumber=phone(30))
    query = {"virtual-queues": "sales,tight,nope", "mode": "mode2"}
    r = await call(stack, client, key, "estimated-wait-time", query=query)
    items = parsed(client, "estimated-wait-time", r, 200)["data"]
    assert [i["virtualQueue"] for i in items] == ["sales", "tight", "nope"]
    bad = await call(
        stack,
        client,
        key,
        "estimated-wait-time",
        query={"virtual-queues": "sales", "mode": "mode9"},
    )
    parsed(client, "estimated-wait-time", bad, 400)


# --- Click-To-Call-In and statistics -----------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_call_in_create(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    linked = await created_id(stack, key, phoneNumber=phone(40), desiredTime=next_slot_in(7))
    for i in range(20):  # about one code in ten starts with a zero when drawn from 000000-999999
        body = client.body(
            "CallInRequestsParms",
            groupName="support",
            fromPhoneNumber=phone(41 + i),
            userData={"order": f"A{i}"},
            callbackServiceId=linked,
        )
        data = parsed(
            client,
            "call-in-create",
            await call(stack, client, key, "call-in-create", body=body),
            200,
        )["data"]
        assert data["callbackServiceId"] == linked
    unknown = client.body("CallInRequestsParms", groupName="nope")
    parsed(
        client,
        "call-in-create",
        await call(stack, client, key, "call-in-create", body=unknown),
        400,
    )


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_statistics(stack: Stack, client: Client) -> None:
    key = await provision(stack)
    cache = {"cache-control": "max-age=15"}
    r = await call(stack, client, key, "statistics", headers=cache)
    parsed(client, "statistics", r, 200)
    parsed(
        client,
        "statistics",
        await call(stack, client, "wrong-key", "statistics", headers=cache),
        401,
    )


# --- every operation: authentication -------------------------------------------------------------

_CALLS: dict[str, dict[str, Any]] = {
    "create": {"body": {"serviceName": "sales", "phoneNumber": "+14155550199"}},
    "cancel": {"body": {"id": UNKNOWN_ID}},
    "retrieve": {"body": {"id": UNKNOWN_ID}},
    "availability": {"path": {"service-name": "sales"}},
    "open-for": {"path": {"service-name": "sales"}},
    "queue-status": {"path": {"queue-name": "sales"}},
    "estimated-wait-time": {"query": {"virtual-queues": "sales"}},
    "call-in-create": {"body": {"groupName": "support"}},
    "statistics": {},
}


def test_the_auth_table_names_every_operation() -> None:
    assert set(_CALLS) == set(OPERATIONS)


@pytest.mark.parametrize("op_key", sorted(OPERATIONS))
@pytest.mark.parametrize("client", CLIENTS, ids=repr)
async def test_a_wrong_api_key_answers_401_in_the_envelope(
    stack: Stack, client: Client, op_key: str
) -> None:
    await provision(stack)
    r = await call(stack, client, "not-a-key", op_key, **_CALLS[op_key])
    parsed(client, op_key, r, 401)

"""Create, retrieve, cancel and the dispatch as Genesys' published clients use them: the
SDKs' request defaults are accepted, every GES booking field reaches the routing engine, the
retrieve and the admin detail, and refusals use the codes GES documents."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import sqlalchemy as sa

from dialback.db.schema import callbacks
from dialback.kit.timefmt import iso
from tests.support.stack import SettingsFactory, Stack, started_stack, wait_for

V3 = "/engagement/v3/callbacks"
# What CreateCallbackParms (engagement-client-js and -java) sends when the caller sets only
# the required fields: its two defaults.
SDK_DEFAULTS = {
    "cbOfferType": "ASAP if the request does not include the desiredTime parameter and "
    "SCHEDULED if the request includes the desiredTime parameter.",
    "language": "en-US",
}
BOOKING_FIELDS = {
    "routePoint": "RP_5000",
    "surveyRP": "RP_SURVEY",
    "inboundVQ": "VQ_Inbound",
    "channel": "web",
    "offerTiming": "ON-HOURS",
    "cbOriginationIxnId": "00F2AB3C-IXN",
    "offerThreshold": 120,
}
PUSH = [{"channel": "FCM", "target": "device-token-1"}]


async def post(stack: Stack, key: str, op: str, body: dict[str, Any]) -> Any:
    return await stack.public.post(f"{V3}/{op}", json=body, headers={"x-api-key": key})


async def booked(stack: Stack, key: str, **body: Any) -> str:
    body = {"serviceName": "sales", "phoneNumber": "+14155550123", **SDK_DEFAULTS, **body}
    r = await post(stack, key, "create", body)
    assert r.status_code == 200, r.text
    return str(r.json()["data"]["id"])


async def retrieved(stack: Stack, key: str, cid: str) -> dict[str, Any]:
    r = await post(stack, key, "retrieve", {"id": cid})
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


async def test_the_sdk_defaults_book_and_every_booking_field_is_carried(
    settings_with: SettingsFactory, routing_redis_url: str
) -> None:
    async with started_stack(settings_with(simulator="off")) as stack:
        key = await stack.tenant()
        before = time.time()
        cid = await booked(stack, key, **BOOKING_FIELDS, pushTargets=PUSH, userData={"o": {"n": 1}})
        bare = await booked(stack, key, phoneNumber="+14155550124")
        later = await booked(
            stack, key, phoneNumber="+14155550125", desiredTime=iso(time.time() + 3600)
        )

        # The routing engine gets every GES booking field as a string ("" when not given).
        client = aioredis.from_url(routing_redis_url, decode_responses=True)
        try:

            async def dispatched() -> dict[str, dict[str, str]]:
                entries = await client.xrange("NewCallbackStream")
                found = {f["id"]: f for _i, f in entries if f.get("type") == "callback"}
                return found if {cid, bare} <= set(found) else {}

            entries = await wait_for(dispatched, timeout=10)
        finally:
            await client.aclose()
        sent = entries[cid]
        assert {k: sent[k] for k in BOOKING_FIELDS} == {
            k: str(v) for k, v in BOOKING_FIELDS.items()
        }
        assert sent["language"] == "en-US" and sent["userData"] == '{"o":{"n":1}}'
        assert "pushTargets" not in sent  # kept for notifications, not the routing engine's
        assert {k: entries[bare][k] for k in BOOKING_FIELDS} == dict.fromkeys(BOOKING_FIELDS, "")

        view = await retrieved(stack, key, cid)
        assert view["cbOfferType"] == "ASAP"  # the sentence is no type: derived
        assert {k: view[k] for k in BOOKING_FIELDS} == BOOKING_FIELDS
        assert view["language"] == "en-US"
        # "By default, the desired time is the current time": when it was booked (and due).
        assert view["desiredTime"] == view["createdTime"]
        assert before <= _epoch(view["desiredTime"]) <= time.time()
        assert {k: (await retrieved(stack, key, bare))[k] for k in BOOKING_FIELDS} == dict.fromkeys(
            BOOKING_FIELDS
        )
        assert (await retrieved(stack, key, later))["cbOfferType"] == "SCHEDULED"

        r = await stack.internal.get(f"/admin/v1/callbacks/{cid}")
        assert r.status_code == 200, r.text
        detail = r.json()["data"]
        assert {k: detail[k] for k in BOOKING_FIELDS} == BOOKING_FIELDS
        assert detail["pushTargets"] == PUSH
        assert detail["userData"] == {"o": {"n": 1}}
        assert (await stack.internal.get(f"/admin/v1/callbacks/{bare}")).json()["data"][
            "pushTargets"
        ] == []


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_the_js_sdk_push_pair_is_kept_with_the_java_list(stack: Stack) -> None:
    key = await stack.tenant()
    cid = await booked(
        stack,
        key,
        desiredTime=iso(time.time() + 3600),
        pushChannel="FCM",
        pushTarget="js-token",
        pushTargets=PUSH,
    )
    detail = (await stack.internal.get(f"/admin/v1/callbacks/{cid}")).json()["data"]
    assert detail["pushTargets"] == [*PUSH, {"channel": "FCM", "target": "js-token"}]
    r = await post(
        stack, key, "create", {"serviceName": "sales", "phoneNumber": "+1415555", "pushTarget": "t"}
    )
    assert r.status_code == 400 and r.json()["status"]["message"].startswith("pushChannel:")


async def test_cancel_once_an_agent_has_it_is_400_publicly_409_for_the_admin(stack: Stack) -> None:
    key = await stack.tenant()
    cid = await booked(stack, key, desiredTime=iso(time.time() + 3600))
    async with stack.rt.engine.begin() as conn:
        await conn.execute(
            callbacks.update().where(callbacks.c.id == cid).values(state="PROCESSING")
        )
    r = await post(stack, key, "cancel", {"id": cid})
    assert r.status_code == 400, r.text
    assert r.json()["status"] == {
        "code": 400,
        "message": "callback is PROCESSING and can no longer be cancelled",
        "corrId": r.headers["x-correlation-id"],
    }
    r = await stack.internal.post(f"/admin/v1/callbacks/{cid}/cancel")
    assert r.status_code == 409, r.text
    r = await post(stack, key, "cancel", {"id": "00000000-0000-4000-8000-000000000000"})
    assert r.status_code == 404, r.text
    async with stack.rt.engine.connect() as conn:
        state = (
            await conn.execute(sa.select(callbacks.c.state).where(callbacks.c.id == cid))
        ).scalar()
    assert state == "PROCESSING"

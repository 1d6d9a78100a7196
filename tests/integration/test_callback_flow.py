"""A callback booked through the public API travels SCHEDULED -> QUEUED -> ... -> COMPLETED."""

from __future__ import annotations

from tests.support.stack import Stack, wait_for


async def retrieve(stack: Stack, key: str, cid: str) -> dict:
    r = await stack.public.post(
        "/engagement/v3/callbacks/retrieve", json={"id": cid}, headers={"x-api-key": key}
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def test_immediate_callback_completes_through_simulator(stack: Stack) -> None:
    key = await stack.tenant()
    r = await stack.public.post(
        "/engagement/v3/callbacks/create",
        json={
            "serviceName": "sales",
            "phoneNumber": "+1 415 555 0123",
            "userData": {"order": "A1"},
        },
        headers={"x-api-key": key},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"]["code"] == 200
    assert body["status"]["corrId"] == r.headers["x-correlation-id"]
    cid = body["data"]["id"]

    async def completed() -> dict | None:
        data = await retrieve(stack, key, cid)
        return data if data["callbackState"] == "COMPLETED" else None

    data = await wait_for(completed, timeout=15)
    assert data["callbackReason"] == "answered"
    assert data["phoneNumber"] == "+14155550123"
    r = await stack.internal.get(f"/admin/v1/callbacks/{cid}")
    assert r.status_code == 200, r.text
    states = [e["toState"] for e in r.json()["data"]["history"]]
    assert states[:3] == ["SCHEDULED", "QUEUED", "ROUTING"]

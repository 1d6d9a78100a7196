"""``POST /engagement/v3/statistics/operations/get-statistic-ex`` as the SDKs call it: no body,
``x-api-key`` and ``cache-control: max-age=N`` (issue #10, finding 10)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.public_api import API, assert_error, config
from tests.support.stack import Stack

PATH = f"{API}/statistics/operations/get-statistic-ex"


async def post(stack: Stack, key: str | None, **kw: Any) -> httpx.Response:
    headers = {"content-type": "application/json", **kw.pop("headers", {})}
    if key is not None:
        headers["x-api-key"] = key
    return await stack.public.post(PATH, headers=headers, **kw)


async def test_the_sdk_call_answers_the_tenants_queue_statistics(stack: Stack) -> None:
    key = await stack.tenant(config=config())
    await stack.tenant(service="support", config=config())
    other = await stack.tenant("globex", service="private", config=config())
    r = await stack.public.post(
        f"{API}/callbacks/create",
        json={"serviceName": "sales", "phoneNumber": "+14155550100", "desiredTime": None},
        headers={"x-api-key": key},
    )
    assert r.status_code == 200, r.text
    r = await post(stack, key, headers={"cache-control": "max-age=15"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"]["code"] == 200 and body["status"]["message"] == "Successful"
    data = body["data"]
    assert [q["virtualQueue"] for q in data["virtualQueues"]] == ["sales", "support"]
    sales = data["virtualQueues"][0]
    assert sum(sales["callbacks"].values()) + sum(sales["completed"].values()) == 1
    assert set(sales["callbacks"]) == {"scheduled", "queued", "routing", "processing"}
    assert {"answered", "no-answer", "busy", "failed", "cancelled"} <= set(sales["completed"])
    assert type(sales["estimatedWaitTime"]) is int and sales["resultCode"] in (0, -1, -2)
    assert type(data["activeConsumers"]) is int and data["windowSeconds"] == 3600
    assert int(r.headers["age"]) <= 15
    assert r.headers["cache-control"].startswith("private, max-age=")
    # Cached: the same snapshot within max-age, for this tenant only.
    again = await post(stack, key)
    assert again.json()["data"]["asOf"] == data["asOf"]
    theirs = (await post(stack, other)).json()["data"]
    assert [q["virtualQueue"] for q in theirs["virtualQueues"]] == ["private"]
    named = await post(stack, key, params={"virtual-queues": "support,ghost", "windowSeconds": 60})
    assert [q["virtualQueue"] for q in named.json()["data"]["virtualQueues"]] == [
        "support",
        "ghost",
    ]


async def test_authentication_and_bounded_input(stack: Stack) -> None:
    key = await stack.tenant(config=config())
    assert_error(await post(stack, None), 401, "missing x-api-key")
    assert_error(await post(stack, "wrong"), 401, "")
    assert_error(
        await post(stack, key, headers={"cache-control": "max-age=soon"}),
        400,
        "cache-control: max-age must be a whole number",
    )
    assert_error(
        await post(stack, key, headers={"cache-control": "max-age=" + "9" * 300}),
        400,
        "cache-control: ",
    )
    too_many = ",".join(f"q{i}" for i in range(51))
    assert_error(
        await post(stack, key, params={"virtual-queues": too_many}),
        400,
        "virtual-queues: at most 50",
    )
    assert_error(
        await post(stack, key, params={"virtual-queues": " , "}),
        400,
        "virtual-queues: name at least one",
    )


@pytest.mark.parametrize("window", ["59", "86401", "soon"])
async def test_window_bounds(stack: Stack, window: str) -> None:
    key = await stack.tenant(config=config())
    assert_error(await post(stack, key, params={"windowSeconds": window}), 400, "windowSeconds: ")

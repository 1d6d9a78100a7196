"""The ``Idempotency-Key`` of a create: a retry answers the first booking, on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from testbed.metrics_parse import parse, value

from dialback.db.schema import callbacks, idempotency_keys
from tests.support.stack import Stack, make_settings, started_stack

CREATE = "/engagement/v3/callbacks/create"
BODY = {"serviceName": "sales", "phoneNumber": "+14155550123", "userData": {"order": "A1"}}


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    settings = make_settings(database_url=database_url, monitor_enabled=False)
    async with started_stack(settings) as s:
        yield s


async def post(stack: Stack, api_key: str, body: Any, key: str | None = None) -> httpx.Response:
    headers = {"x-api-key": api_key}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await stack.public.post(CREATE, json=body, headers=headers)


async def count(stack: Stack, table: sa.Table = callbacks) -> int:
    async with stack.rt.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar())


def without_corr_id(r: httpx.Response) -> tuple[int, Any]:
    data = r.json()
    assert data["status"].pop("corrId") == r.headers["x-correlation-id"]
    return r.status_code, data


async def test_the_same_key_twice_books_once_and_answers_alike(stack: Stack) -> None:
    api_key = await stack.tenant()
    first = await post(stack, api_key, BODY, "retry-me-1")
    assert first.status_code == 200, first.text
    again = await post(stack, api_key, BODY, "retry-me-1")
    assert without_corr_id(again) == without_corr_id(first)
    # The same request in other words: keys in another order, a default spelled out.
    reworded = {"userData": {"order": "A1"}, "priority": 0, **BODY}
    assert without_corr_id(await post(stack, api_key, reworded, "retry-me-1")) == (
        without_corr_id(first)
    )
    assert await count(stack) == 1
    samples = parse((await stack.internal.get("/metrics")).text)
    assert value(samples, "ges_callbacks_create_replayed_total", tenant="acme") == 2
    assert value(samples, "ges_callbacks_created", tenant="acme", service="sales") == 1
    # Without a key (or with another) every create books.
    other = {**BODY, "phoneNumber": "+14155550124"}
    assert (await post(stack, api_key, other)).status_code == 200
    assert (
        await post(stack, api_key, {**other, "phoneNumber": "+14155550125"}, "retry-me-2")
    ).status_code == 200
    assert await count(stack) == 3


async def test_the_same_key_for_another_request_is_a_409(stack: Stack) -> None:
    api_key = await stack.tenant()
    assert (await post(stack, api_key, BODY, "k-1")).status_code == 200
    r = await post(stack, api_key, {**BODY, "phoneNumber": "+14155550124"}, "k-1")
    assert r.status_code == 409, r.text
    assert r.json()["status"]["message"] == (
        "Idempotency-Key: already used for a different request; send a new key for a new callback"
    )
    assert r.json()["status"]["corrId"] == r.headers["x-correlation-id"]
    assert await count(stack) == 1


async def test_keys_are_per_tenant(stack: Stack) -> None:
    acme = await stack.tenant("acme")
    globex = await stack.tenant("globex")
    ids = {(await post(stack, k, BODY, "shared")).json()["data"]["id"] for k in (acme, globex)}
    assert len(ids) == 2 and await count(stack) == 2


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "Idempotency-Key: must not be empty"),
        ("x" * 256, "Idempotency-Key: at most 255 characters"),
        ("tab\there", "Idempotency-Key: only printable ASCII characters"),
        ("caf\u00e9", "Idempotency-Key: only printable ASCII characters"),
    ],
)
async def test_a_malformed_key_is_a_400(stack: Stack, key: str, message: str) -> None:
    api_key = await stack.tenant()
    raw = [(b"x-api-key", api_key.encode()), (b"idempotency-key", key.encode("latin-1"))]
    r = await stack.public.post(CREATE, json=BODY, headers=raw)
    assert r.status_code == 400, r.text
    assert r.json()["status"]["message"] == message
    assert await count(stack) == 0
    # The longest key allowed books.
    assert (await post(stack, api_key, BODY, "k" * 255)).status_code == 200


async def test_concurrent_creates_with_one_key_book_once(stack: Stack) -> None:
    api_key = await stack.tenant()
    answers = await asyncio.gather(*(post(stack, api_key, BODY, "burst") for _ in range(12)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["data"]["id"] for r in answers}) == 1
    assert await count(stack) == 1 and await count(stack, idempotency_keys) == 1


async def test_a_retry_is_answered_even_when_throttled_or_full_now(stack: Stack) -> None:
    """The retry books nothing, so it counts against no limit: the first answer, not a 429."""
    api_key = await stack.tenant(settings={"throttle": {"maxCallbacks": 1, "windowSeconds": 600}})
    first = await post(stack, api_key, BODY, "once")
    assert first.status_code == 200
    assert (await post(stack, api_key, {**BODY, "phoneNumber": "+14155550999"})).status_code == 429
    assert without_corr_id(await post(stack, api_key, BODY, "once")) == without_corr_id(first)

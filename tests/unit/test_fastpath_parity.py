"""The fast create route answers exactly as FastAPI's own route for the same endpoint.

One container, two public apps: one with the create route reached past the router
(``web.fastpath``, production), one served by FastAPI's router, dependency solving and body
parsing. Every request below gets the same status, headers and body bytes from both (the
fresh callback id of a successful create aside). ``/metrics`` is reached past the router too,
and answers as its routed endpoint does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialback.app import create_public_app
from tests.support.stack import Stack, make_settings, started_stack

CREATE = "/engagement/v3/callbacks/create"
JSON = {"content-type": "application/json"}
VALID = {"serviceName": "sales", "phoneNumber": "+14155550123"}


def _case(body: bytes | None, headers: dict[str, str], key: bool = True) -> dict[str, Any]:
    return {"body": body, "headers": headers, "key": key}


CASES: dict[str, dict[str, Any]] = {
    "valid": _case(json.dumps(VALID).encode(), JSON),
    "valid, charset in the content type": _case(
        json.dumps(VALID).encode(), {"content-type": "application/json; charset=utf-8"}
    ),
    "valid, +json subtype": _case(
        json.dumps(VALID).encode(), {"content-type": "application/merge-patch+json"}
    ),
    "no body": _case(None, JSON),
    "empty object": _case(b"{}", JSON),
    "array": _case(b"[1, 2]", JSON),
    "string": _case(b'"x"', JSON),
    "null": _case(b"null", JSON),
    "JSON syntax error": _case(b'{"serviceName": ', JSON),
    "trailing garbage": _case(b'{"serviceName": "sales"} x', JSON),
    "not UTF-8": _case(b'{"serviceName": "\xff\xfe"}', JSON),
    "nested too deeply": _case(b"[" * 100_000 + b"]" * 100_000, JSON),
    "integer too long": _case(b'{"priority": ' + b"9" * 5000 + b"}", JSON),
    "text/plain": _case(json.dumps(VALID).encode(), {"content-type": "text/plain"}),
    "no content type": _case(json.dumps(VALID).encode(), {}),
    "form encoded": _case(
        b"serviceName=sales", {"content-type": "application/x-www-form-urlencoded"}
    ),
    "missing api key": _case(json.dumps(VALID).encode(), JSON, key=False),
    "missing field": _case(json.dumps({"serviceName": "sales"}).encode(), JSON),
    "wrong types": _case(json.dumps({"serviceName": 5, "phoneNumber": [1]}).encode(), JSON),
    "bad desiredTime": _case(json.dumps({**VALID, "desiredTime": "tomorrow"}).encode(), JSON),
    "NUL in a field": _case(json.dumps({**VALID, "serviceName": "a\u0000b"}).encode(), JSON),
    "lone surrogate": _case(b'{"serviceName": "\\ud800", "phoneNumber": "+14155550123"}', JSON),
    "userData integer beyond 2^53": _case(
        json.dumps({**VALID, "userData": {"a": [1, 2**60]}}).encode(), JSON
    ),
    "userData as a JSON string (Java SDK)": _case(
        json.dumps({**VALID, "userData": '{"a": 1}'}).encode(), JSON
    ),
    "nested userData": _case(json.dumps({**VALID, "userData": {"a": {"b": 1}}}).encode(), JSON),
    "unknown service": _case(json.dumps({**VALID, "serviceName": "nope"}).encode(), JSON),
    "not a phone number": _case(json.dumps({**VALID, "phoneNumber": "hello"}).encode(), JSON),
    "priority out of range": _case(json.dumps({**VALID, "priority": -1}).encode(), JSON),
    "Idempotency-Key empty": _case(json.dumps(VALID).encode(), {**JSON, "idempotency-key": ""}),
    "Idempotency-Key too long": _case(
        json.dumps(VALID).encode(), {**JSON, "idempotency-key": "k" * 256}
    ),
    "Idempotency-Key not printable": _case(
        json.dumps(VALID).encode(), {**JSON, "idempotency-key": "a\tb"}
    ),
    "Idempotency-Key with a bad body": _case(b"{}", {**JSON, "idempotency-key": "k-bad-body"}),
    "Idempotency-Key without an api key": _case(
        json.dumps(VALID).encode(), {**JSON, "idempotency-key": "k-no-auth"}, key=False
    ),
}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/parity.db", monitor_enabled=False
    )
    async with started_stack(settings) as s:
        yield s


def _comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    body = response.content
    data = json.loads(body)
    if response.status_code == 200:
        assert set(data["data"]) == {"id"}
        data["data"]["id"] = "<new id>"
    return response.status_code, dict(response.headers), data


@pytest.mark.parametrize("name", list(CASES))
async def test_fast_and_plain_routes_answer_alike(stack: Stack, name: str) -> None:
    key = await stack.tenant(settings={"throttle": {"maxCallbacks": 1000, "windowSeconds": 60}})
    plain_app = create_public_app(stack.rt, fast_routes=False)
    case = CASES[name]
    answers = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=plain_app), base_url="http://public"
    ) as plain:
        for client in (stack.public, plain):
            headers = {**case["headers"], "x-correlation-id": "parity"}
            if case["key"]:
                headers["x-api-key"] = key
            r = await client.post(CREATE, content=case["body"], headers=headers)
            answers.append(r)
    fast, slow = answers
    assert fast.headers["x-correlation-id"] == "parity"
    assert _comparable(fast) == _comparable(slow), (fast.content, slow.content)
    if fast.status_code != 200:
        assert fast.content == slow.content


async def test_the_plain_route_really_runs_fastapis_machinery(stack: Stack) -> None:
    """The comparison above compares two paths: the plain app's create goes through the
    router (Starlette marks the scopes it routes), the production app's does not."""
    key = await stack.tenant()
    seen: dict[str, dict[str, Any]] = {}
    for name, fast in (("fast", True), ("plain", False)):
        app = create_public_app(stack.rt, fast_routes=fast)

        async def recording(
            scope: Any, receive: Any, send: Any, app: Any = app, name: str = name
        ) -> None:
            await app(scope, receive, send)
            if scope["type"] == "http":
                seen[name] = scope  # the router marks this same dict as it routes

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=recording), base_url="http://public"
        ) as client:
            r = await client.post(CREATE, json=VALID, headers={"x-api-key": key})
            assert r.status_code == 200, r.text
    assert "router" in seen["plain"]
    assert "router" not in seen["fast"]


@pytest.mark.parametrize("first_fast", [True, False])
async def test_a_key_replays_alike_across_the_two_routes(stack: Stack, first_fast: bool) -> None:
    """Either route books with a key; the other answers that booking (same id, same bytes but
    the corrId) and refuses the key for another body with the same 409."""
    key = await stack.tenant()
    plain_app = create_public_app(stack.rt, fast_routes=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=plain_app), base_url="http://public"
    ) as plain:
        clients = (stack.public, plain) if first_fast else (plain, stack.public)
        headers = {**JSON, "x-api-key": key, "idempotency-key": f"parity-{first_fast}"}
        headers["x-correlation-id"] = "parity"
        answers = [
            await client.post(CREATE, content=json.dumps(VALID).encode(), headers=headers)
            for client in (*clients, *clients)
        ]
        assert {r.status_code for r in answers} == {200}
        assert len({r.content for r in answers}) == 1
        assert len({tuple(sorted(r.headers.items())) for r in answers}) == 1
        other = json.dumps({**VALID, "phoneNumber": "+14155550124"}).encode()
        refused = [await c.post(CREATE, content=other, headers=headers) for c in clients]
        assert [r.status_code for r in refused] == [409, 409]
        assert refused[0].content == refused[1].content
        assert refused[0].headers == refused[1].headers


async def test_metrics_are_served_past_the_router_as_the_routed_endpoint_serves_them(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialback.web import probes

    served = probes._MetricsRoute.serve
    calls: list[str] = []

    async def recording(request: Any) -> Any:
        calls.append(request.url.path)
        return await served(request)

    monkeypatch.setattr(probes._MetricsRoute, "serve", staticmethod(recording))
    direct = await stack.internal.get("/metrics")
    assert calls == ["/metrics"]
    routed = await probes.metrics(stack.rt)
    assert direct.status_code == 200
    assert direct.headers["content-type"] == routed.media_type == probes.CONTENT_TYPE

    def families(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if ln.startswith("# TYPE ")]

    assert families(direct.text) == families(bytes(routed.body).decode())
    assert len(families(direct.text)) > 40

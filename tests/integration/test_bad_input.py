"""Malformed, oversized and hostile requests get a 4xx GES envelope naming the problem, never a 500.

Every case runs against the real stack (PostgreSQL + Redis): PostgreSQL refuses NUL characters and
unpaired surrogates, so these tests fail with a 500 (an exception out of the ASGI app) whenever the
validation in the models lets such a value through to the store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.stack import Stack

V3 = "/engagement/v3"
CREATE = f"{V3}/callbacks/create"
RETRIEVE = f"{V3}/callbacks/retrieve"
CANCEL = f"{V3}/callbacks/cancel"
CALLIN = f"{V3}/call-in/requests/create"
PHONE = "+14155550123"
JSON_CT = {"content-type": "application/json"}


def check_envelope(r: httpx.Response, status: int, *fragments: str) -> str:
    """Assert ``r`` is a GES error envelope with ``status`` whose message holds ``fragments``."""
    ctx = f"{r.request.method} {r.request.url.path} -> {r.status_code} {r.text[:400]}"
    assert r.status_code == status, ctx
    assert r.headers["content-type"].startswith("application/json"), ctx
    body = r.json()
    assert set(body) == {"status", "data"}, ctx
    st = body["status"]
    assert st["code"] == status, ctx
    assert st["corrId"] and st["corrId"] == r.headers["x-correlation-id"], ctx
    for frag in fragments:
        assert frag in st["message"], f"{frag!r} not in message: {ctx}"
    return str(st["message"])


def assert_no_unhandled(stack: Stack) -> None:
    """No request reached the 500 handler or the store's safety net."""
    assert stack.rt.metrics.UNCAUGHT_EXCEPTION.value() == 0


async def post_raw(
    stack: Stack, path: str, body: bytes, key: str, **headers: str
) -> httpx.Response:
    hdrs = {"x-api-key": key, **JSON_CT, **headers}
    return await stack.public.post(path, content=body, headers=hdrs)


def create_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"serviceName": "sales", "phoneNumber": PHONE}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


async def test_a_valid_create_still_works_and_echoes_the_correlation_id(stack: Stack) -> None:
    key = await stack.tenant()
    r = await stack.public.post(
        CREATE,
        json=create_body(userData={"order": "A1", "n": 3, "ok": True, "none": None}),
        headers={"x-api-key": key, "x-correlation-id": "client-abc.123:x_y"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-correlation-id"] == "client-abc.123:x_y"
    assert r.json()["status"]["corrId"] == "client-abc.123:x_y"
    # A JSON media type with parameters or a +json suffix is still JSON.
    for ct, phone in (
        ("application/json; charset=utf-8", "+14155550124"),
        ("application/vnd.ges+json", "+14155550125"),
    ):
        body = json.dumps(create_body(phoneNumber=phone)).encode()
        r = await post_raw(stack, CREATE, body, key, **{"content-type": ct})
        assert r.status_code == 200, (ct, r.text)
    assert_no_unhandled(stack)


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (b"{bad", ("request body is not valid JSON", "position")),
        (b'{"serviceName": "sales",}', ("request body is not valid JSON",)),
        (b"", ("request body must be a JSON object",)),
        (b"[]", ("request body must be a JSON object",)),
        (b'[{"serviceName": "sales"}]', ("request body must be a JSON object",)),
        (b'"sales"', ("request body must be a JSON object",)),
        (b"null", ("request body must be a JSON object",)),
        (b"42", ("request body must be a JSON object",)),
        (b"\xff\xfe{}", ("request body is not valid JSON",)),
        (b'{"serviceName": "\xff"}', ("request body is not valid JSON",)),
    ],
)
async def test_body_that_is_not_a_json_object(
    stack: Stack, body: bytes, fragments: tuple[str, ...]
) -> None:
    key = await stack.tenant()
    for path in (CREATE, RETRIEVE, CANCEL):
        check_envelope(await post_raw(stack, path, body, key), 400, *fragments)
    assert_no_unhandled(stack)


async def test_wrong_types_and_missing_fields_name_the_field(stack: Stack) -> None:
    key = await stack.tenant()
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        (create_body(serviceName=5), ("serviceName:", "string")),
        (create_body(serviceName=["sales"]), ("serviceName:",)),
        (create_body(serviceName=""), ("serviceName:",)),
        (create_body(serviceName="s" * 101), ("serviceName:",)),
        (create_body(phoneNumber=14155550123), ("phoneNumber:",)),
        (create_body(phoneNumber={"n": 1}), ("phoneNumber:",)),
        (create_body(priority="high"), ("priority:",)),
        (create_body(priority=10**30), ("priority:",)),
        (create_body(priority=-1), ("priority:",)),
        (create_body(priority=1.5), ("priority:",)),
        (create_body(priority=[1]), ("priority:",)),
        (create_body(userData=["a", "b"]), ("userData:",)),
        (create_body(userData="a=b"), ("userData:",)),
        (create_body(userData={"a": {"b": 10**20}}), ("userData.a.b:", "2^53-1")),
        (create_body(userData={"a": [1, -(2**53)]}), ("userData.a.1:", "2^53-1")),
        (create_body(userData={"a": "x" * 4097}), ("userData.a:", "4096")),
        (create_body(userData={f"k{i}": i for i in range(101)}), ("userData:", "100 keys")),
        (create_body(desiredTime="garbage"), ("desiredTime:",)),
        (create_body(desiredTime="2025-13-45T99:00:00Z"), ("desiredTime:",)),
        (create_body(desiredTime=1e300), ("desiredTime:",)),
        (create_body(desiredTime=-1e20), ("desiredTime:",)),
        (create_body(desiredTime={"at": "now"}), ("desiredTime:",)),
        (create_body(desiredTime="0001-01-01T00:00:00+01:00"), ("desiredTime:", "out of range")),
        (create_body(desiredTime="9999-12-31T23:59:59-23:59"), ("desiredTime:", "out of range")),
        (create_body(desiredTime="2001-01-01T00:00:00Z"), ("desiredTime:", "past")),
        (create_body(desiredTime="2999-01-01T00:00:00Z"), ("desiredTime:", "days ahead")),
        (create_body(language="e"), ("language:",)),
        (create_body(language=7), ("language:",)),
        (create_body(cbOfferType=["ASAP"]), ("cbOfferType:",)),
        (create_body(alwaysCheckCapacity="maybe"), ("alwaysCheckCapacity:",)),
        (create_body(offerThreshold=-5), ("offerThreshold:",)),
        (create_body(offerTiming=3), ("offerTiming:",)),
        (create_body(inboundVQ="v" * 257), ("inboundVQ:", "256")),
        (create_body(captchaToken=["t"]), ("captchaToken:",)),
        (create_body(serviceName=...), ("serviceName: field required",)),
        (create_body(phoneNumber=...), ("phoneNumber: field required",)),
        ({}, ("serviceName: field required", "phoneNumber: field required")),
        ({"servicename": "sales", "phonenumber": PHONE}, ("serviceName: field required",)),
        (create_body(serviceName="nosuch"), ("serviceName:", "no service named 'nosuch'")),
        (create_body(phoneNumber="12"), ("phoneNumber:",)),
        (create_body(phoneNumber="not a number"), ("phoneNumber:",)),
    ]
    for body, fragments in cases:
        r = await stack.public.post(CREATE, json=body, headers={"x-api-key": key})
        check_envelope(r, 400, *fragments)
    for body, fragments in [
        ({"id": 5}, ("id:",)),
        ({"id": ""}, ("id:",)),
        ({"id": "x" * 65}, ("id:",)),
        ({"id": None}, ("id:",)),
        ({"ids": ["a"]}, ("id: field required",)),
    ]:
        for path in (RETRIEVE, CANCEL):
            r = await stack.public.post(path, json=body, headers={"x-api-key": key})
            check_envelope(r, 400, *fragments)
    assert_no_unhandled(stack)


async def test_huge_numbers_and_deep_nesting(stack: Stack) -> None:
    key = await stack.tenant()
    base = b'{"serviceName": "sales", "phoneNumber": "+14155550123", '
    cases: list[tuple[bytes, tuple[str, ...]]] = [
        (base + b'"priority": 1e400}', ("priority:", "finite")),
        (base + b'"priority": NaN}', ("priority:",)),
        (base + b'"priority": -Infinity}', ("priority:",)),
        (base + b'"offerThreshold": ' + b"9" * 4000 + b"}", ("offerThreshold:",)),
        # More digits than Python converts: the body cannot be parsed at all.
        (base + b'"priority": ' + b"9" * 5000 + b"}", ("request body is not valid JSON",)),
        (base + b'"userData": {"a": NaN}}', ("userData.a:", "finite")),
        (base + b'"userData": {"a": Infinity}}', ("userData.a:", "finite")),
        (base + b'"userData": {"a": 1e999}}', ("userData.a:", "finite")),
        (base + b'"desiredTime": 1e400}', ("desiredTime:",)),
        # Deeper than the JSON parser's recursion limit (and under the body limit).
        (
            base + b'"x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
            ("request body is not valid JSON",),
        ),
        (b"[" * 30_000 + b"]" * 30_000, ("request body is not valid JSON",)),
        # Parsable but nested deeper than userData allows, or where a scalar is expected.
        (
            base + b'"userData": {"a": ' + b"[" * 500 + b"]" * 500 + b"}}",
            ("userData.a.0.0.0.0.0:", "nested deeper than 5 levels"),
        ),
        # 20 digits: more than a JavaScript number holds exactly (and than 64 bits).
        (base + b'"userData": {"n": 12345678901234567890}}', ("userData.n:", "2^53-1")),
        (base + b'"userData": {"a": {"b": [' + b"7" * 1000 + b"]}}}", ("userData.a.b.0:",)),
        (base + b'"serviceName": ' + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"}", ("serviceName:",)),
    ]
    for body, fragments in cases:
        assert len(body) < stack.rt.settings.max_body_bytes
        check_envelope(await post_raw(stack, CREATE, body, key), 400, *fragments)
    # A huge integer was once stored, and then broke every dispatch: it can no longer be created.
    r = await post_raw(stack, CREATE, base + b'"userData": {"big": ' + b"7" * 1000 + b"}}", key)
    check_envelope(r, 400, "userData.big:", "integer beyond +/-(2^53-1)")
    ok = base + b'"userData": {"n": 9007199254740991, "m": -9007199254740991, "x": 1.5e300}}'
    r = await post_raw(stack, CREATE, ok, key)
    assert r.status_code == 200, r.text
    assert_no_unhandled(stack)


NUL = "\\u0000"
SURROGATES = ("\\ud800", "\\udfff", "\\udc00x\\ud800")


async def test_nul_and_unpaired_surrogates_are_refused_with_the_field_name(stack: Stack) -> None:
    key = await stack.tenant()

    def raw(template: str, bad: str) -> bytes:
        # JSON escapes: the parser turns them into the offending characters.
        return template.replace("BAD", bad).encode()

    body_cases = [
        (CREATE, '{"serviceName": "sa BAD les", "phoneNumber": "+14155550123"}', "serviceName:"),
        (CREATE, '{"serviceName": "sales", "phoneNumber": "+1415555BAD0123"}', "phoneNumber:"),
        (
            CREATE,
            '{"serviceName": "sales", "phoneNumber": "+14155550123", "userData": {"a": "xBADy"}}',
            "userData.a:",
        ),
        (
            CREATE,
            '{"serviceName": "sales", "phoneNumber": "+14155550123", '
            '"userData": {"a": "ok", "b": "BAD"}}',
            "userData.b:",
        ),
        (
            CREATE,
            '{"serviceName": "sales", "phoneNumber": "+14155550123", "inboundVQ": "vqBAD"}',
            "inboundVQ:",
        ),
        (
            CREATE,
            '{"serviceName": "sales", "phoneNumber": "+14155550123", "channel": "BAD"}',
            "channel:",
        ),
        (
            CREATE,
            '{"serviceName": "sales", "phoneNumber": "+14155550123", "pushTarget": "tBAD"}',
            "pushTarget:",
        ),
        (
            CREATE,
            '{"serviceName": "sales", "phoneNumber": "+14155550123", "captchaToken": "BAD"}',
            "captchaToken:",
        ),
        (
            CREATE,
            '{"serviceName": "sales", "phoneNumber": "+14155550123", '
            '"routePoint": "BAD", "surveyRP": "x", "cbOriginationIxnId": "y"}',
            "routePoint:",
        ),
        (CALLIN, '{"groupName": "gBAD"}', "groupName:"),
        (CALLIN, '{"groupName": "g", "fromPhoneNumber": "+1415BAD"}', "fromPhoneNumber:"),
        (CALLIN, '{"groupName": "g", "callbackServiceId": "sBAD"}', "callbackServiceId:"),
        (CALLIN, '{"groupName": "g", "userData": {"k": "BAD"}}', "userData.k:"),
        (RETRIEVE, '{"id": "aBAD"}', "id:"),
        (CANCEL, '{"id": "BAD"}', "id:"),
    ]
    for path, template, field in body_cases:
        check_envelope(await post_raw(stack, path, raw(template, NUL), key), 400, field, "NUL")
        for sur in SURROGATES:
            r = await post_raw(stack, path, raw(template, sur), key)
            check_envelope(r, 400, field, "surrogate")
    # A surrogate sent as raw (CESU-style) UTF-8 bytes instead of a JSON escape.
    r = await post_raw(stack, CREATE, b'{"serviceName": "\xed\xa0\x80", "phoneNumber": "1"}', key)
    check_envelope(r, 400, "serviceName:")
    # NUL in path and query parameters that name a service.
    h = {"x-api-key": key}
    for path, field in [
        (f"{V3}/callbacks/availability/sa%00les", "service_name:"),
        (f"{V3}/callbacks/open-for/%00", "service_name:"),
        (f"{V3}/callbacks/queue-status/q%00", "queue_name:"),
        (f"{V3}/estimated-wait-time?virtual-queues=sales,a%00b", "virtual-queues:"),
    ]:
        check_envelope(await stack.public.get(path, headers=h), 400, field, "NUL")
    # Invalid UTF-8 in the URL decodes to U+FFFD: an unknown service, not a crash.
    r = await stack.public.get(f"{V3}/callbacks/availability/%ff%fe", headers=h)
    check_envelope(r, 404, "no service named")
    r = await stack.public.get(f"{V3}/estimated-wait-time?virtual-queues=%ed%a0%80", headers=h)
    assert r.status_code == 200, r.text
    assert_no_unhandled(stack)


async def test_correlation_id_is_echoed_or_refused_by_name(stack: Stack) -> None:
    key = await stack.tenant()
    h = {"x-api-key": key}
    r = await stack.public.post(CREATE, json={}, headers={**h, "x-correlation-id": "abc-1"})
    assert check_envelope(r, 400, "serviceName")
    assert r.headers["x-correlation-id"] == "abc-1"
    r = await stack.internal.get("/nope", headers={"x-correlation-id": "int:9"})
    check_envelope(r, 404)
    assert r.headers["x-correlation-id"] == "int:9"
    for bad in ("x" * 129, "a b", "a/b", "", "abc;drop", "\xe9t\xe9", '"quoted"'):
        for client in (stack.public, stack.internal):
            r = await client.post(
                CREATE,
                content=json.dumps(create_body()).encode(),
                headers={**h, **JSON_CT, "x-correlation-id": bad.encode("latin-1")},
            )
            check_envelope(r, 400, "x-correlation-id")
            assert r.headers["x-correlation-id"] != bad
            assert 1 <= len(r.headers["x-correlation-id"]) <= 128
    # Without a client id every answer gets a fresh one.
    a = await stack.public.post(CREATE, json={}, headers=h)
    b = await stack.public.post(CREATE, json={}, headers=h)
    assert a.headers["x-correlation-id"] != b.headers["x-correlation-id"]
    assert_no_unhandled(stack)


async def test_oversized_bodies_answer_413_and_are_counted(stack: Stack) -> None:
    key = await stack.tenant()
    limit = stack.rt.settings.max_body_bytes
    oversize = stack.rt.metrics.INVALID_CONTENT_LENGTH
    padding = "x" * (limit + 10)
    big = json.dumps(create_body(userData={"pad": padding})).encode()

    r = await post_raw(stack, CREATE, big, key)
    check_envelope(r, 413, f"limit of {limit} bytes")
    assert oversize.value() == 1

    # A body exactly at the limit is read (and refused for its content, not its size).
    at_limit = b'{"serviceName": "sales", "x": "' + b"y" * (limit - 33) + b'"}'
    assert len(at_limit) == limit
    check_envelope(await post_raw(stack, CREATE, at_limit, key), 400, "phoneNumber")
    assert oversize.value() == 1

    async def stream(total: int, chunk: int = 4096) -> AsyncIterator[bytes]:
        yield b'{"serviceName": "sales", "phoneNumber": "+14155550123", "pad": "'
        sent = 0
        while sent < total:
            yield b"z" * chunk
            sent += chunk
        yield b'"}'

    # Chunked, no Content-Length: the limit is enforced while the body streams in.
    r = await stack.public.post(
        CREATE, content=stream(limit * 3), headers={"x-api-key": key, **JSON_CT}
    )
    assert "content-length" not in r.request.headers
    check_envelope(r, 413, f"limit of {limit} bytes")
    assert oversize.value() == 2
    # A short chunked body is fine.
    r = await stack.public.post(CREATE, content=stream(100), headers={"x-api-key": key, **JSON_CT})
    assert r.status_code == 200, r.text

    # Content-Length is checked before authentication and on the internal listener too.
    r = await stack.public.post(CREATE, content=big, headers=JSON_CT)
    check_envelope(r, 413)
    r = await stack.internal.post("/admin/v1/tenants", content=big, headers=JSON_CT)
    check_envelope(r, 413)
    r = await post_raw(stack, CREATE, b"{}", key, **{"content-length": "9" * 40})
    check_envelope(r, 413)
    assert oversize.value() == 5

    for bad_length in ("abc", "-1", "1_0", "+5", "1e3", "0x10", "2, 2"):
        r = await post_raw(stack, CREATE, b"{}", key, **{"content-length": bad_length})
        check_envelope(r, 400, "content-length")
    assert oversize.value() == 5
    assert_no_unhandled(stack)


async def test_authentication_failures_are_401_envelopes(stack: Stack) -> None:
    key = await stack.tenant()
    body = json.dumps(create_body()).encode()
    for headers, fragment in [
        ({}, "missing x-api-key"),
        ({"x-api-key": ""}, "missing x-api-key"),
        ({"x-api-key": "wrong"}, "invalid x-api-key"),
        ({"x-api-key": key + "x"}, "invalid x-api-key"),
        ({"x-api-key": key[:-1]}, "invalid x-api-key"),
        ({"x-api-key": "k" * 10_000}, "invalid x-api-key"),
        ({"x-api-key": "\xe9\xff\x01".encode("latin-1")}, "invalid x-api-key"),
        ({"X-API-KEY": "nope"}, "invalid x-api-key"),
        ({"authorization": f"Bearer {key}"}, "missing x-api-key"),
    ]:
        for method, path in [
            ("POST", CREATE),
            ("POST", RETRIEVE),
            ("POST", CANCEL),
            ("GET", f"{V3}/callbacks/availability/sales"),
            ("GET", f"{V3}/callbacks/open-for/sales"),
            ("GET", f"{V3}/callbacks/queue-status/sales"),
            ("GET", f"{V3}/estimated-wait-time?virtual-queues=sales"),
        ]:
            r = await stack.public.request(
                method,
                path,
                content=body if method == "POST" else None,
                headers={**JSON_CT, **headers},
            )
            check_envelope(r, 401, fragment)
    # The admin API: bearer token required.
    for headers in (
        {"authorization": ""},
        {"authorization": "Bearer wrong"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Bearer " + "t" * 5000},
        {"authorization": "Bearer \xe9".encode("latin-1")},
    ):
        r = await stack.internal.get("/admin/v1/tenants", headers=headers)
        check_envelope(r, 401)
    assert_no_unhandled(stack)


async def test_non_json_content_types_get_415(stack: Stack) -> None:
    key = await stack.tenant()
    text = json.dumps(create_body())
    h = {"x-api-key": key}
    for kwargs in [
        {"content": text.encode(), "headers": {**h, "content-type": "text/plain"}},
        {"content": text.encode(), "headers": {**h, "content-type": "text/json"}},
        {"content": text.encode(), "headers": {**h, "content-type": "application/xml"}},
        {"content": text.encode(), "headers": {**h, "content-type": "garbage"}},
        {"content": text.encode(), "headers": {**h, "content-type": ";;;=="}},
        {"content": text.encode(), "headers": h},  # no content-type at all
        {"data": {"serviceName": "sales", "phoneNumber": PHONE}, "headers": h},
        {"files": {"f": ("a.json", text.encode())}, "headers": h},
    ]:
        for path in (CREATE, RETRIEVE, CANCEL):
            r = await stack.public.post(path, **kwargs)  # type: ignore[arg-type]
            check_envelope(r, 415, "content-type", "application/json")
    # An empty body is simply missing, whatever its declared type.
    r = await stack.public.post(CREATE, content=b"", headers={**h, "content-type": "text/plain"})
    check_envelope(r, 400, "request body must be a JSON object")
    # Authentication is checked first.
    r = await stack.public.post(
        CREATE, content=text.encode(), headers={"content-type": "text/plain"}
    )
    check_envelope(r, 401)
    assert_no_unhandled(stack)


async def test_unknown_paths_and_wrong_methods_on_both_listeners(stack: Stack) -> None:
    key = await stack.tenant()
    h = {"x-api-key": key}
    for client in (stack.public, stack.internal):
        for path in (
            "/nope",
            "/",
            f"{V3}/callbacks/nope",
            f"{V3}/callbacks/create/extra",
            "/%00",
            "/a/../b",
        ):
            check_envelope(await client.get(path, headers=h), 404, "no such endpoint")
            check_envelope(await client.post(path, json={}, headers=h), 404, "no such endpoint")
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        r = await stack.public.request(method, CREATE, headers=h)
        check_envelope(r, 405, "method not allowed")
        assert "POST" in r.headers["allow"]
    r = await stack.public.post(f"{V3}/callbacks/availability/sales", json={}, headers=h)
    check_envelope(r, 405)
    assert "GET" in r.headers["allow"]
    for path in ("/health/live", "/health/ready"):
        r = await stack.internal.post(path, json={})
        check_envelope(r, 405, "method not allowed")
    r = await stack.internal.delete("/health/live")
    check_envelope(r, 405)
    assert_no_unhandled(stack)


async def test_another_tenants_callback_reads_as_missing(stack: Stack) -> None:
    mine = await stack.tenant("acme")
    theirs = await stack.tenant("globex")
    r = await stack.public.post(CREATE, json=create_body(), headers={"x-api-key": mine})
    assert r.status_code == 200, r.text
    cid = r.json()["data"]["id"]
    missing = "00000000-0000-4000-8000-000000000000"
    for path in (RETRIEVE, CANCEL):
        foreign = check_envelope(
            await stack.public.post(path, json={"id": cid}, headers={"x-api-key": theirs}), 404
        )
        absent = check_envelope(
            await stack.public.post(path, json={"id": missing}, headers={"x-api-key": theirs}), 404
        )
        assert foreign == f"no callback with id {cid!r}"
        assert foreign.replace(cid, "ID") == absent.replace(missing, "ID")
    # The other tenant's cancel did nothing.
    r = await stack.public.post(RETRIEVE, json={"id": cid}, headers={"x-api-key": mine})
    assert r.status_code == 200, r.text
    assert r.json()["data"].get("callbackReason") != "cancelled"
    assert_no_unhandled(stack)


async def test_query_parameters_are_validated_by_name(stack: Stack) -> None:
    key = await stack.tenant()
    h = {"x-api-key": key}
    avail = f"{V3}/callbacks/availability/sales"
    for query, status, fragments in [
        ("numberOfDays=0", 400, ("numberOfDays:",)),
        ("numberOfDays=x", 400, ("numberOfDays:",)),
        ("numberOfDays=" + "9" * 40, 400, ("numberOfDays:",)),
        ("maxTimeSlots=-1", 400, ("maxTimeSlots:",)),
        ("reportBusy=maybe", 400, ("reportBusy:",)),
        ("start=yesterday", 400, ("start:",)),
        ("start=9999-12-31T23:59:59-23:59", 400, ("start:", "out of range")),
        ("start=0001-01-01T00:00:00%2B01:00", 400, ("start:", "out of range")),
        ("end=0001-01-01", 400, ("end:",)),
        ("startMS=1e5", 400, ("startMS:",)),
        ("startMS=-5", 400, ("startMS:",)),
        ("endMS=" + "9" * 19, 400, ("endMS:",)),
        ("startMS=" + "9" * 30, 400, ("startMS:",)),
        ("timezone=Mars/Olympus", 400, ("timezone:",)),
        ("timezone=../../etc/passwd", 400, ("timezone:",)),
        ("timezone=%00", 400, ("timezone:",)),
        ("timezone=" + "A" * 65, 400, ("timezone:",)),
        ("start=2030-01-02T00:00:00Z&end=2030-01-01T00:00:00Z", 400, ("end:",)),
        ("start=2030-01-01T00:00:00Z&end=2030-03-01T00:00:00Z", 400, ("end:", "31 days")),
    ]:
        r = await stack.public.get(f"{avail}?{query}", headers=h)
        check_envelope(r, status, *fragments)
    for path, status, fragments in [
        (f"{V3}/callbacks/open-for/sales?start=9999-12-31T23:59:59-23:59", 400, ("start:",)),
        (f"{V3}/callbacks/open-for/sales?timezone=Nowhere", 400, ("timezone:",)),
        (f"{V3}/callbacks/availability/nosuch", 404, ("no service named 'nosuch'",)),
        (f"{V3}/callbacks/queue-status/{'q' * 101}", 400, ("queue_name:",)),
        (f"{V3}/estimated-wait-time", 400, ("virtual-queues: field required",)),
        (f"{V3}/estimated-wait-time?virtual-queues=", 400, ("virtual-queues:",)),
        (f"{V3}/estimated-wait-time?virtual-queues=,,,", 400, ("virtual-queues:",)),
        (f"{V3}/estimated-wait-time?virtual-queues=a&mode=mode9", 400, ("mode:",)),
        (
            f"{V3}/estimated-wait-time?virtual-queues=" + ",".join("q" * 51),
            400,
            ("virtual-queues:",),
        ),
    ]:
        check_envelope(await stack.public.get(path, headers=h), status, *fragments)
    assert_no_unhandled(stack)


async def test_admin_api_refuses_hostile_input_by_name(stack: Stack) -> None:
    await stack.tenant("acme")
    adm = "/admin/v1"
    for method, path, body, fragments in [
        ("POST", f"{adm}/tenants/acme/api-keys", b'{"name": "k\\u0000"}', ("name:", "NUL")),
        ("POST", f"{adm}/tenants/acme/api-keys", b'{"name": "k\\ud800"}', ("name:", "surrogate")),
        (
            "PUT",
            f"{adm}/tenants/acme/services/s2",
            b'{"validation": {"blockedPatterns": ["x\\u0000"]}}',
            ("blockedPatterns", "NUL"),
        ),
        (
            "PUT",
            f"{adm}/tenants/acme/services/s2",
            b'{"businessHours": {"timezone": "\\u0000"}}',
            ("businessHours.timezone:",),
        ),
        ("POST", f"{adm}/call-in/match", b'{"toPhoneNumber": "+1\\u0000"}', ("toPhoneNumber:",)),
        ("GET", f"{adm}/call-in/requests?tenant=%00", None, ("tenant:", "NUL")),
        ("GET", f"{adm}/call-in/requests?group=a%00", None, ("group:", "NUL")),
        ("POST", f"{adm}/tenants", b"{bad", ("request body is not valid JSON",)),
        ("POST", f"{adm}/tenants", b"[]", ("request body must be a JSON object",)),
        ("POST", f"{adm}/tenants", b"[" * 20_000 + b"]" * 20_000, ("not valid JSON",)),
    ]:
        r = await stack.internal.request(method, path, content=body, headers=JSON_CT)
        check_envelope(r, 400, *fragments)
    r = await stack.internal.post(
        f"{adm}/tenants", content=b'{"name": "x"}', headers={"content-type": "text/plain"}
    )
    check_envelope(r, 415, "content-type")
    # NUL in path parameters: refused or not found, never a crash.
    for method, path in [
        ("GET", f"{adm}/tenants/%00"),
        ("GET", f"{adm}/tenants/acme%00"),
        ("GET", f"{adm}/tenants/acme/services/%00"),
        ("DELETE", f"{adm}/tenants/acme/api-keys/%00"),
        ("GET", f"{adm}/callbacks/%00"),
        ("POST", f"{adm}/callbacks/%00/cancel"),
        ("GET", f"{adm}/callbacks?tenant=%00"),
        ("GET", f"{adm}/tenants/acme/callin-groups/%00"),
    ]:
        r = await stack.internal.request(method, path)
        assert r.status_code in (400, 404), (path, r.text)
        check_envelope(r, r.status_code)
    assert_no_unhandled(stack)

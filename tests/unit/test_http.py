"""HTTP plumbing on a bare FastAPI app: text checks, error messages, corrIds and the 500 path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import DBAPIError

from dialback.kit.errors import Conflict
from dialback.kit.text import SafeStr, SafeText, check_text
from dialback.web.envelope import ok
from dialback.web.errors import describe_validation_errors, install_error_handlers
from dialback.web.middleware import CorrelationAndLimits


@pytest.mark.parametrize(
    "value", ["", "plain", "ünïcødé ✓", "😀 pair \U0001f600", "tab\tnew\nline"]
)
def test_check_text_accepts_storable_text(value: str) -> None:
    assert check_text(value) == value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("a\x00b", "NUL"), ("\x00", "NUL"), ("\ud800", "surrogate"), ("x\udfffy", "surrogate")],
)
def test_check_text_refuses_nul_and_lone_surrogates(value: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        check_text(value)


def test_check_text_leaves_non_strings_to_the_type_check() -> None:
    assert check_text(5) == 5
    assert check_text(None) is None


class Model(BaseModel):
    name: SafeStr = Field(min_length=1, max_length=5)
    note: Annotated[str, Field(max_length=3), SafeText] | None = None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "a\x00"}, "name: must not contain NUL (\\u0000) characters"),
        ({"name": "\ud800"}, "name: must be valid Unicode: unpaired surrogate (\\ud800-\\udfff)"),
        ({"name": "toolong"}, "name: String should have at most 5 characters"),
        ({"name": "ok", "note": "long"}, "note: String should have at most 3 characters"),
        ({"name": "ok", "note": "\x00"}, "note: must not contain NUL (\\u0000) characters"),
        ({}, "name: field required"),
        ({"name": 5}, "name: Input should be a valid string"),
    ],
)
def test_constrained_text_errors_name_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Model.model_validate(data)
    assert describe_validation_errors(info.value.errors()) == message


def test_body_level_and_json_errors() -> None:
    assert describe_validation_errors([{"type": "missing", "loc": ("body",)}]) == (
        "request body must be a JSON object"
    )
    assert describe_validation_errors(
        [{"type": "model_attributes_type", "loc": ("body",), "msg": "x"}]
    ) == ("request body must be a JSON object")
    msg = describe_validation_errors(
        [{"type": "json_invalid", "loc": ("body", 7), "ctx": {"error": "Expecting value"}}]
    )
    assert msg == "request body is not valid JSON (Expecting value at position 7)"
    assert (
        describe_validation_errors(
            [
                {"type": "missing", "loc": ("query", "virtual-queues")},
                {
                    "type": "int_parsing",
                    "loc": ("query", "n"),
                    "msg": "Input should be a valid integer",
                },
                {"type": "missing", "loc": ("query", "virtual-queues")},
            ]
        )
        == "virtual-queues: field required; n: Input should be a valid integer"
    )


class Body(BaseModel):
    name: SafeStr


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.fixture
def harness() -> tuple[FastAPI, list[BaseException], list[int]]:
    unhandled: list[BaseException] = []
    oversize: list[int] = []
    app = FastAPI()
    install_error_handlers(app, unhandled.append)
    app.add_middleware(
        CorrelationAndLimits, max_body_bytes=100, on_oversize=lambda: oversize.append(1)
    )

    @app.post("/echo")
    async def echo(body: Body) -> Any:
        return ok({"name": body.name})

    @app.get("/boom")
    async def boom() -> Any:
        raise RuntimeError("bug")

    @app.get("/store/{state}")
    async def store(state: str) -> Any:
        raise DBAPIError("SELECT 1", None, _Orig(state))

    @app.get("/conflict")
    async def conflict() -> Any:
        raise Conflict("callback is COMPLETED")

    @app.post("/raw")
    async def raw(request: Request) -> Any:
        return ok({"size": len(await request.body())})

    return app, unhandled, oversize


def client(app: FastAPI) -> httpx.AsyncClient:
    # Exceptions escaping the app would be raised here: the 500 must be an answer, not a crash.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_500_envelope_carries_the_requests_corr_id(harness: Any) -> None:
    app, unhandled, _ = harness
    async with client(app) as c:
        r = await c.get("/boom", headers={"x-correlation-id": "trace-42"})
    assert r.status_code == 500
    assert r.json()["status"] == {
        "code": 500,
        "message": "internal error; quote the corrId when reporting it",
        "corrId": "trace-42",
    }
    assert r.headers["x-correlation-id"] == "trace-42"
    assert len(unhandled) == 1


async def test_store_data_errors_are_400_and_reported_other_db_errors_500(harness: Any) -> None:
    app, unhandled, _ = harness
    async with client(app) as c:
        for state in ("22021", "22P05", "22003"):
            r = await c.get(f"/store/{state}")
            assert r.status_code == 400, r.text
            assert "cannot be stored" in r.json()["status"]["message"]
        r = await c.get("/store/40001", headers={"x-correlation-id": "db-1"})
    assert r.status_code == 500
    assert r.json()["status"]["corrId"] == "db-1"
    # Every one is reported: a 400 from the store means validation missed something.
    assert len(unhandled) == 4


async def test_api_errors_validation_and_methods(harness: Any) -> None:
    app, unhandled, _ = harness
    async with client(app) as c:
        r = await c.get("/conflict")
        assert (r.status_code, r.json()["status"]["message"]) == (409, "callback is COMPLETED")
        r = await c.post(
            "/echo", content=b'{"name": "a\\u0000"}', headers={"content-type": "application/json"}
        )
        assert r.status_code == 400
        assert r.json()["status"]["message"] == "name: must not contain NUL (\\u0000) characters"
        r = await c.post("/echo", content=b'{"name": "a"}', headers={"content-type": "text/plain"})
        assert r.status_code == 415
        r = await c.get("/echo")
        assert r.status_code == 405
        assert r.headers["allow"] == "POST"
        assert r.json()["data"] is None
    assert unhandled == []


async def test_body_limit_with_and_without_content_length(harness: Any) -> None:
    app, _, oversize = harness

    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"0123456789"

    async with client(app) as c:
        r = await c.post("/raw", content=b"x" * 100)
        assert r.json()["data"] == {"size": 100}
        r = await c.post("/raw", content=b"x" * 101)
        assert r.status_code == 413
        assert r.json()["status"]["message"] == "request body exceeds the limit of 100 bytes"
        r = await c.post("/raw", content=chunks(10))
        assert r.json()["data"] == {"size": 100}
        r = await c.post("/raw", content=chunks(11), headers={"x-correlation-id": "big"})
        assert r.status_code == 413
        assert r.json()["status"]["corrId"] == "big"
        r = await c.post("/raw", content=b"x", headers={"content-length": "1" + "0" * 5000})
        assert r.status_code == 413
    assert len(oversize) == 3


async def test_direct_routes_bypass_the_router_and_keep_error_handling() -> None:
    from fastapi import APIRouter
    from starlette.responses import Response

    from dialback.web.fastpath import DirectRoute, install_direct_routes

    served: list[str] = []

    async def direct_serve(request: Request) -> Response:
        # Starlette's Router marks the scopes it routes: a direct route's has no mark.
        served.append(f"{request.scope['route'].path} router={'router' in request.scope}")
        if request.headers.get("x-fail") == "conflict":
            raise Conflict("callback is COMPLETED")
        return ok({"direct": True})

    class Direct(DirectRoute):
        serve = staticmethod(direct_serve)

    async def documented(body: dict[str, Any]) -> Any:
        """What the OpenAPI schema shows."""

    router = APIRouter(prefix="/v3")
    router.add_api_route("/fast", documented, methods=["POST"], route_class_override=Direct)
    router.add_api_route("/slow", documented, methods=["POST"])
    app = FastAPI()
    install_error_handlers(app, lambda exc: None)
    app.include_router(router)
    install_direct_routes(app, [router])
    async with client(app) as c:
        r = await c.post("/v3/fast", json={})
        assert r.status_code == 200 and r.json()["data"] == {"direct": True}
        r = await c.post("/v3/fast", json={}, headers={"x-fail": "conflict"})
        assert r.status_code == 409 and r.json()["status"]["message"] == "callback is COMPLETED"
        r = await c.get("/v3/fast")  # other methods still meet the router: 405
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        r = await c.post("/v3/slow", json={})
        assert r.status_code == 200
    assert served == ["/v3/fast router=False"] * 2
    assert "/v3/fast" in app.openapi()["paths"]


def test_a_generated_corr_id_is_a_dashed_uuid() -> None:
    """The Java SDK types ``corrId`` as java.util.UUID: UUID.fromString needs the dashed form."""
    import uuid

    from dialback.web.envelope import new_corr_id

    corr = new_corr_id()
    assert str(uuid.UUID(corr)) == corr and corr.count("-") == 4

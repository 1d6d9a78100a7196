"""Error handlers: every error, expected or not, answers in the GES envelope with a 4xx that
names the problem (or the 500 envelope for a bug)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from dialback.kit.errors import ApiError
from dialback.web.envelope import (
    CORR_SCOPE_KEY,
    INTERNAL_ERROR_MESSAGE,
    NOT_JSON_MESSAGE,
    error_response,
)
from dialback.web.middleware import UNHANDLED_STATE_KEY


def _loc_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "body"


def _error_text(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "value_error" and err.get("ctx", {}).get("error") is not None:
        return str(err["ctx"]["error"])
    if kind == "string_unicode":
        return "must be valid Unicode: unpaired surrogate (\\ud800-\\udfff)"
    return str(err.get("msg", "invalid value"))


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """Turn pydantic/FastAPI validation errors into one message naming each field."""
    msgs = []
    for err in errors[:5]:
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            detail = err.get("ctx", {}).get("error")
            pos = loc[1] if len(loc) > 1 else None
            where = f" at position {pos}" if isinstance(pos, int) else ""
            msgs.append(f"request body is not valid JSON ({detail or 'syntax error'}{where})")
        elif loc == ("body",):
            msgs.append("request body must be a JSON object")
        else:
            msgs.append(f"{_loc_name(loc)}: {_error_text(err)}")
    return "; ".join(dict.fromkeys(msgs)) or "invalid request"


# FastAPI's answer when reading the body fails for a reason other than a JSON syntax error:
# bytes that are not UTF-8/16/32, nesting deeper than the parser's recursion limit, an integer
# with more digits than Python converts.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_BODY_UNREADABLE = (
    "request body is not valid JSON (not UTF-8 encoded, nested too deeply or a number too long)"
)
_UNSTORABLE = (
    "the request contains a value that cannot be stored "
    "(a NUL character, an unpaired surrogate or an out-of-range number)"
)


_ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {
            "type": "object",
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "corrId": {"type": "string"},
            },
            "required": ["code", "message", "corrId"],
        },
        "data": {},
    },
    "required": ["status"],
}


def _document_errors(app: FastAPI) -> None:
    """Document what validation errors really answer: a 400 envelope, not FastAPI's 422."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for path_item in schema.get("paths", {}).values():
            for op in path_item.values():
                responses = op.get("responses") if isinstance(op, dict) else None
                if not responses or "422" not in responses:
                    continue
                del responses["422"]
                responses.setdefault(
                    "400",
                    {
                        "description": "Bad Request: the message names the invalid field",
                        "content": {"application/json": {"schema": _ENVELOPE_SCHEMA}},
                    },
                )
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            definition = components.pop(name, None)
            if definition is not None and f'"#/components/schemas/{name}"'.encode() in (
                orjson.dumps(schema)
            ):
                components[name] = definition  # still referenced elsewhere: keep it
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI, on_unhandled: Callable[[BaseException], None]) -> None:
    """Make every error, expected or not, answer in the GES envelope."""

    async def api_error(_req: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.data, headers=exc.headers)

    async def validation_error(_req: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if isinstance(exc.body, bytes | bytearray) and exc.body:
            # FastAPI keeps the raw bytes when the content-type is not JSON.
            return error_response(415, NOT_JSON_MESSAGE)
        return error_response(400, describe_validation_errors(exc.errors()))

    async def http_error(_req: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = "no such endpoint"
        elif exc.status_code == 405:
            message = "method not allowed on this endpoint"
        elif exc.status_code == 400 and message == _FASTAPI_BODY_ERROR:
            message = _BODY_UNREADABLE
        return error_response(exc.status_code, message, headers=exc.headers)

    async def store_rejected(req: Request, exc: Exception) -> Response:
        # Safety net for a value that slipped past validation and that the database refused
        # (SQLSTATE class 22, "data exception"): still the client's input, so a 4xx. It is
        # reported as unhandled because the validation gap should be closed.
        sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
        if isinstance(exc, UnicodeEncodeError) or sqlstate.startswith("22"):
            on_unhandled(exc)
            return error_response(400, _UNSTORABLE)
        raise exc

    async def unhandled(req: Request, exc: Exception) -> Response:
        # Only for errors raised outside CorrelationAndLimits (e.g. in an outer middleware).
        on_unhandled(exc)
        return error_response(500, INTERNAL_ERROR_MESSAGE, corr_id=req.scope.get(CORR_SCOPE_KEY))

    _document_errors(app)
    setattr(app.state, UNHANDLED_STATE_KEY, on_unhandled)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(DBAPIError, store_rejected)
    app.add_exception_handler(UnicodeEncodeError, store_rejected)
    app.add_exception_handler(Exception, unhandled)

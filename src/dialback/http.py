"""HTTP plumbing shared by both listeners: the GES envelope, correlation ids, body limits."""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialback.errors import ApiError

CORR_HEADER = "x-correlation-id"
_CORR_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

corr_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("corr_id", default="")


def new_corr_id() -> str:
    """A fresh correlation id."""
    return uuid.uuid4().hex


def envelope(
    code: int, message: str, corr_id: str, data: Any = None, *, include_data: bool = True
) -> bytes:
    """Serialise a GES response envelope."""
    body: dict[str, Any] = {"status": {"code": code, "message": message, "corrId": corr_id}}
    if include_data:
        body["data"] = data
    return orjson.dumps(body)


class EnvelopeResponse(Response):
    """A JSON response already wrapped in the GES envelope."""

    media_type = "application/json"

    def __init__(self, data: Any = None, *, status_code: int = 200, message: str = "Successful"):
        corr = corr_id_var.get() or new_corr_id()
        super().__init__(
            content=envelope(status_code, message, corr, data),
            status_code=status_code,
            headers={CORR_HEADER: corr},
        )


def ok(data: Any = None, status_code: int = 200) -> EnvelopeResponse:
    """A successful envelope."""
    return EnvelopeResponse(data, status_code=status_code)


def error_response(status: int, message: str, data: Any = None) -> EnvelopeResponse:
    """An error envelope."""
    return EnvelopeResponse(data, status_code=status, message=message)


class CorrelationAndLimits:
    """Pure-ASGI middleware: assigns the corrId and enforces the maximum body size."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, on_oversize: Callable[[], None]):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.on_oversize = on_oversize

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        corr = None
        length: int | None = None
        bad_length = False
        for k, v in scope["headers"]:
            if k == b"x-correlation-id":
                corr = v.decode("latin-1")
            elif k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    bad_length = True
        if corr is not None and not _CORR_RE.match(corr):
            token = corr_id_var.set(new_corr_id())
            try:
                await self._reject(
                    send,
                    400,
                    "header x-correlation-id must be 1-128 characters of letters, digits, "
                    "'.', '_', ':' or '-'",
                )
            finally:
                corr_id_var.reset(token)
            return
        token = corr_id_var.set(corr or new_corr_id())
        try:
            if bad_length or (length is not None and length < 0):
                await self._reject(send, 400, "header content-length is not a valid number")
                return
            if length is not None and length > self.max_body_bytes:
                self.on_oversize()
                await self._reject(
                    send, 413, f"request body exceeds the limit of {self.max_body_bytes} bytes"
                )
                return
            await self.app(scope, self._limited(receive, send), send)
        finally:
            corr_id_var.reset(token)

    def _limited(self, receive: Receive, send: Send) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    self.on_oversize()
                    raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
            return msg

        return wrapped

    async def _reject(self, send: Send, status: int, message: str) -> None:
        resp = error_response(status, message)
        await resp({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _loc_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """Turn pydantic/FastAPI validation errors into one message naming each field."""
    msgs = []
    for err in errors[:5]:
        kind = err.get("type", "")
        loc = err.get("loc", ())
        if kind == "json_invalid":
            msgs.append("request body is not valid JSON")
            continue
        name = _loc_name(loc)
        if kind == "missing":
            msgs.append(f"{name}: field required")
        elif kind == "extra_forbidden":
            msgs.append(f"{name}: unknown field")
        else:
            msgs.append(f"{name}: {err.get('msg', 'invalid value')}")
    return "; ".join(msgs) or "invalid request"


def install_error_handlers(app: FastAPI, on_unhandled: Callable[[BaseException], None]) -> None:
    """Make every error, expected or not, answer in the GES envelope."""

    async def api_error(_req: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.data)

    async def validation_error(_req: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, describe_validation_errors(exc.errors()))

    async def http_error(_req: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = "no such endpoint"
        elif exc.status_code == 405:
            message = "method not allowed on this endpoint"
        return error_response(exc.status_code, message)

    async def unhandled(_req: Request, exc: Exception) -> Response:
        on_unhandled(exc)
        return error_response(500, "internal error; quote the corrId when reporting it")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unhandled)


Handler = Callable[[Request], Awaitable[Response]]

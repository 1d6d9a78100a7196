"""HTTP plumbing shared by both listeners: the GES envelope, correlation ids, body limits."""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from pydantic import BeforeValidator
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialback.errors import ApiError
from dialback.observability.health import is_dependency_error
from dialback.observability.logging import log_context

log = logging.getLogger("dialback.http")
CORR_HEADER = "x-correlation-id"
CORR_SCOPE_KEY = "dialback.corr_id"
_CORR_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_DIGITS_RE = re.compile(rb"^[0-9]+$")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

INTERNAL_ERROR_MESSAGE = "internal error; quote the corrId when reporting it"
DEPENDENCY_DOWN_MESSAGE = "a dependency of dialback is unavailable; retry later"
# install_error_handlers keeps its ``on_unhandled`` here for the middleware's last-resort 500.
UNHANDLED_STATE_KEY = "dialback_on_unhandled"
NOT_JSON_MESSAGE = "content-type: the request body must be JSON (Content-Type: application/json)"

corr_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("corr_id", default="")


def check_text(value: Any) -> Any:
    """Refuse text no store can hold: NUL characters and unpaired UTF-16 surrogates."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL (\\u0000) characters")
        if _SURROGATE_RE.search(value):
            raise ValueError("must be valid Unicode: unpaired surrogate (\\ud800-\\udfff)")
    return value


SafeText = BeforeValidator(check_text)
"""Put this last in ``Annotated[str, <constraints>, SafeText]`` on every client-supplied string
(after the length/pattern constraints so their messages stay precise)."""

SafeStr = Annotated[str, SafeText]
"""A client-supplied string that is storable text (no NUL, no unpaired surrogate)."""


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

    def __init__(
        self,
        data: Any = None,
        *,
        status_code: int = 200,
        message: str = "Successful",
        corr_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        corr = corr_id or corr_id_var.get() or new_corr_id()
        super().__init__(
            content=envelope(status_code, message, corr, data),
            status_code=status_code,
            headers={**(headers or {}), CORR_HEADER: corr},
        )


def ok(data: Any = None, status_code: int = 200) -> EnvelopeResponse:
    """A successful envelope."""
    return EnvelopeResponse(data, status_code=status_code)


def error_response(
    status: int,
    message: str,
    data: Any = None,
    *,
    corr_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EnvelopeResponse:
    """An error envelope."""
    return EnvelopeResponse(
        data, status_code=status, message=message, corr_id=corr_id, headers=headers
    )


class BodyTooLarge(StarletteHTTPException):
    """413 raised while the body streams in; an HTTPException so FastAPI's body reader
    re-raises it instead of turning it into a generic 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


RequestObserver = Callable[[Scope, int, float], None]


class _Response:
    """What a request answered: its status once the response has started (0 before)."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 0


class CorrelationAndLimits:
    """Pure-ASGI middleware: assigns the corrId, enforces the maximum body size, answers the
    500 and 503 envelopes, and hands every answered request to ``observe`` (metrics and the
    request line: ``observability.http_metrics.RequestObservability``) with its status and
    duration. One layer for all of it: each ASGI layer costs every request."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        on_oversize: Callable[[], None],
        observe: RequestObserver | None = None,
        unobserved: tuple[str, ...] = ("/metrics",),
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.on_oversize = on_oversize
        self.observe = observe
        self.unobserved = unobserved

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = _Response()
        observe = self.observe
        if observe is None or scope["path"] in self.unobserved:
            await self._serve(scope, receive, send, response)
            return
        start = time.perf_counter()
        # Fields bound while serving (tenant, callbackId) belong to this request's line only.
        token = log_context.set({})
        try:
            await self._serve(scope, receive, send, response)
        finally:
            # Not started: the exception goes on to the server's 500 answer.
            observe(scope, response.status or 500, time.perf_counter() - start)
            log_context.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, response: _Response) -> None:
        corr = None
        lengths: set[bytes] = set()
        for k, v in scope["headers"]:
            if k == b"x-correlation-id":
                corr = v.decode("latin-1")
            elif k == b"content-length":
                lengths.add(v.strip())
        if corr is not None and not _CORR_RE.match(corr):
            scope[CORR_SCOPE_KEY] = corr = new_corr_id()
            await self._reject(
                send,
                response,
                corr,
                400,
                "header x-correlation-id must be 1-128 characters of letters, digits, "
                "'.', '_', ':' or '-'",
            )
            return
        corr = corr or new_corr_id()
        # Kept in the scope too: the 500 handler and the request line run outside this
        # middleware's context.
        scope[CORR_SCOPE_KEY] = corr
        if len(lengths) > 1 or any(not _DIGITS_RE.match(v) for v in lengths):
            await self._reject(
                send, response, corr, 400, "header content-length is not a valid number"
            )
            return
        length = next(iter(lengths), b"")
        # More than 18 digits is over any limit (and int() refuses thousands of digits).
        if length and (len(length) > 18 or int(length) > self.max_body_bytes):
            self.on_oversize()
            await self._reject(
                send,
                response,
                corr,
                413,
                f"request body exceeds the limit of {self.max_body_bytes} bytes",
            )
            return

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.status = message["status"]
            await send(message)

        token = corr_id_var.set(corr)
        try:
            await self.app(scope, self._limited(receive), tracking_send)
        except Exception as exc:
            # A bug, not the client: answer the 500 envelope here, with this request's corrId,
            # and report it once, instead of letting the exception escape the application.
            report = getattr(getattr(scope.get("app"), "state", None), UNHANDLED_STATE_KEY, None)
            if response.status or report is None:
                raise
            if is_dependency_error(exc):
                # The store or a Redis is unreachable: not a bug and not the client's fault.
                log.warning(
                    "request failed, a dependency is unavailable: %s: %s", type(exc).__name__, exc
                )
                await self._reject(send, response, corr, 503, DEPENDENCY_DOWN_MESSAGE)
                return
            report(exc)
            await self._reject(send, response, corr, 500, INTERNAL_ERROR_MESSAGE)
        finally:
            corr_id_var.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    self.on_oversize()
                    raise BodyTooLarge(limit)
            return msg

        return wrapped

    async def _reject(
        self, send: Send, response: _Response, corr: str, status: int, message: str
    ) -> None:
        response.status = status
        resp = error_response(status, message, corr_id=corr)
        await resp({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


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
        return error_response(exc.status, exc.message, exc.data)

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


Handler = Callable[[Request], Awaitable[Response]]


class DirectRoute(APIRoute):
    """A route documented from its endpoint's signature like any other, but served by
    ``serve`` (a plain ``Request -> Response`` coroutine, no dependency solving) and reached
    past FastAPI's router (see ``install_direct_routes``): for the hot paths."""

    serve: Callable[[Request], Awaitable[Response]]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        serve = type(self).serve

        async def handler(request: Request) -> Response:
            return await serve(request)

        return handler


class _DirectRoutes:
    """Serves exact (method, path) matches with their ``DirectRoute``, else the router.

    FastAPI's routing (route matching, the per-route exception and exit-stack wrappers) costs
    about a tenth of a create callback. A direct route stays a route of the app (in the
    OpenAPI schema, the ``route`` label of the metrics), and its errors still reach the app's
    exception handlers, which sit just outside this layer.
    """

    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], DirectRoute]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self.routes.get((scope["method"], scope["path"]))
            if route is not None:
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                response = await type(route).serve(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_direct_routes(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Reach the ``DirectRoute`` routes of ``routers`` (included in ``app`` without a prefix;
    fixed paths only) without going through the router."""
    routes = {
        (method, route.path): route
        for router in routers
        for route in router.routes
        if isinstance(route, DirectRoute) and not route.param_convertors
        for method in route.methods or ()
    }
    build = app.build_middleware_stack

    def build_with_direct_routes() -> ASGIApp:
        stack = build()
        # The innermost middleware wraps the router: the direct routes go between them.
        layer: Any = stack
        while getattr(layer, "app", None) is not None and layer.app is not app.router:
            layer = layer.app
        if routes and getattr(layer, "app", None) is app.router:
            layer.app = _DirectRoutes(app.router, routes)
        return stack

    app.build_middleware_stack = build_with_direct_routes  # type: ignore[method-assign]

"""The fast create route: the ONE module that knows FastAPI's and Starlette's internals.

A ``DirectRoute`` is documented from its endpoint's signature like any other route, but served
by a plain ``Request -> Response`` coroutine (no dependency solving) and reached past FastAPI's
router. ``read_json_body`` reads a body exactly as FastAPI would, with the same errors.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi import routing as fastapi_routing
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send


class DirectRoute(APIRoute):
    """A route documented and, through FastAPI's router, served from its endpoint like any
    other; reached past the router (see ``install_direct_routes``) it is served by ``serve``, a
    plain ``Request -> Response`` coroutine without dependency solving: for the hot paths.

    The two ways must answer alike; ``tests/unit/test_fastpath_parity.py`` holds them to it.
    """

    serve: Callable[[Request], Awaitable[Response]]


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


def served_routes(app: Any) -> list[tuple[BaseRoute, str, frozenset[str]]]:
    """Every route ``app`` serves, in matching order: the route object a routed request's
    ``scope["route"]`` names, the full path template it is served at, and its methods.

    FastAPI from 0.16x includes routers lazily: ``scope["route"]`` is then the route as
    declared in its router (its path without the prefixes it was included under), and only
    the route contexts know the full template. Earlier versions copy each included route
    with its full path into ``app.routes``.
    """
    routes = getattr(app, "routes", None) or []
    iter_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    served: list[tuple[BaseRoute, str, frozenset[str]]] = []
    if iter_contexts is not None:
        for context in iter_contexts(routes):
            path = context.path
            if isinstance(path, str):
                served.append((context.original_route, path, frozenset(context.methods or ())))
        return served
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            served.append((route, path, frozenset(getattr(route, "methods", None) or ())))
    return served


def _is_json(content_type: str) -> bool:
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def read_json_body(request: Request) -> tuple[bytes, Any]:
    """The raw body and its JSON value, read as FastAPI reads a body parameter's.

    Not JSON by its content type: the raw bytes (refused as 415 by the validation). A JSON
    syntax error raises FastAPI's ``RequestValidationError``; bytes that are not UTF-8/16/32,
    nesting deeper than the parser's limit or an integer with too many digits raise the
    ``HTTPException`` FastAPI raises (the error handlers word both for the client).
    """
    raw = await request.body()
    if not raw:
        return raw, None
    content_type = request.headers.get("content-type")
    if not (content_type and _is_json(content_type)):
        return raw, raw
    try:
        return raw, json.loads(raw)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error], body=exc.doc) from None
    except Exception:
        raise HTTPException(400, "There was an error parsing the body") from None


M = TypeVar("M", bound=BaseModel)


def validate_body(model: type[M], raw: bytes, body: Any) -> M:
    """``body`` as ``model``, with FastAPI's errors for a missing or invalid body."""
    if not raw:
        errors: list[Any] = [{"type": "missing", "loc": ("body",), "msg": "Field required"}]
        raise RequestValidationError(errors, body=None)
    try:
        return model.model_validate(body, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=body) from None

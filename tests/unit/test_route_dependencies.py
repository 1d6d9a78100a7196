"""No route waits for FastAPI's thread pool: every dependency and endpoint is a coroutine.

FastAPI runs a plain ``def`` dependency or endpoint in a worker thread, a thread hop and a
wait for the event loop on every request (it tripled the latency of /metrics once).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from dialback.app import create_internal_app, create_public_app
from dialback.container import Container
from dialback.settings import Settings


def _sync_calls(dependant: Dependant, route: str, found: list[str]) -> None:
    call: Any = dependant.call
    if call is not None and not (
        inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)
    ):
        found.append(f"{route}: {getattr(call, '__qualname__', call)!s}")
    for sub in dependant.dependencies:
        _sync_calls(sub, route, found)


def _api_routes(routes: list[Any], found: list[str]) -> list[APIRoute]:
    """The APIRoutes below ``routes``, through included routers (whose own dependencies are
    checked on the way)."""
    out: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        router = getattr(route, "original_router", None)  # FastAPI >= 0.16x: included lazily
        if router is not None:
            for dep in router.dependencies:
                if not inspect.iscoroutinefunction(dep.dependency):
                    found.append(f"router dependency {dep.dependency!r}")
            out.extend(_api_routes(router.routes, found))
    return out


def test_every_dependency_and_endpoint_is_a_coroutine(tmp_path: Path) -> None:
    c = Container(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db"))
    found: list[str] = []
    routes = 0
    for app in (create_public_app(c), create_internal_app(c)):
        for route in _api_routes(app.routes, found):
            routes += 1
            _sync_calls(route.dependant, f"{sorted(route.methods)} {route.path}", found)
    assert routes > 20
    assert found == []


def test_the_check_finds_a_sync_dependency() -> None:
    from fastapi import Depends, FastAPI

    def sync_dep() -> int:
        return 1

    app = FastAPI()

    @app.get("/x")
    async def x(v: int = Depends(sync_dep)) -> int:
        return v

    found: list[str] = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            _sync_calls(route.dependant, route.path, found)
    assert found == ["/x: test_the_check_finds_a_sync_dependency.<locals>.sync_dep"]

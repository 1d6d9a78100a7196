"""ASGI applications: the public Engagement API (3005) and the internal API (3050)."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from dialback import __version__
from dialback.http import CorrelationAndLimits, install_direct_routes, install_error_handlers
from dialback.observability.http_metrics import RequestObservability
from dialback.runtime import Runtime

log = logging.getLogger("dialback.app")


def _base_app(rt: Runtime, title: str, description: str) -> FastAPI:
    app = FastAPI(
        title=title,
        version=__version__,
        description=description,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = rt

    def on_unhandled(exc: BaseException) -> None:
        rt.events.uncaught_exception("http")
        log.error("unhandled error", exc_info=exc)

    install_error_handlers(app, on_unhandled)
    app.add_middleware(
        CorrelationAndLimits,
        max_body_bytes=rt.settings.max_body_bytes,
        on_oversize=rt.events.oversize_body,
        observe=RequestObservability(rt.metrics),
    )
    return app


def create_public_app(rt: Runtime) -> FastAPI:
    """The GES-compatible public Engagement API."""
    from dialback.callbacks.endpoints import router as callbacks_router
    from dialback.callins.endpoints import router as callins_router

    app = _base_app(
        rt,
        "dialback Engagement API",
        "GES v3 compatible callback API. Authenticate with the `x-api-key` header.",
    )
    app.include_router(callbacks_router)
    app.include_router(callins_router)
    install_direct_routes(app, [callbacks_router])
    return app


def create_internal_app(rt: Runtime) -> FastAPI:
    """Probes, the admin API and (with observability) /metrics."""
    from dialback.admin.endpoints import router as admin_router
    from dialback.callins.admin import router as callins_admin_router
    from dialback.health import router as health_router
    from dialback.observability.admin import router as logging_admin_router

    app = _base_app(rt, "dialback internal API", "Probes and the admin API (bearer token).")
    app.include_router(health_router)
    app.include_router(admin_router)
    app.include_router(logging_admin_router)
    app.include_router(callins_admin_router)
    return app

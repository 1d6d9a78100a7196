"""ASGI applications: the public Engagement API (3005) and the internal API (3050), with the
one ``/admin/v1`` router."""

from __future__ import annotations

import logging
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from dialback import __version__
from dialback.audit import admin_endpoints as audit_admin
from dialback.callbacks import admin_endpoints as callbacks_admin
from dialback.callbacks import endpoints as callbacks_public
from dialback.callins import admin_endpoints as callins_admin
from dialback.callins import endpoints as callins_public
from dialback.container import Container
from dialback.identity import admin_endpoints as users_admin
from dialback.kit.errors import NotFound
from dialback.observability import admin_endpoints as logging_admin
from dialback.observability.http_metrics import RequestObservability
from dialback.retention import admin_endpoints as retention_admin
from dialback.services import admin_endpoints as services_admin
from dialback.statistics import endpoints as statistics_public
from dialback.tenants import admin_endpoints as tenants_admin
from dialback.ui.deps import UI_PREFIX
from dialback.ui.endpoints import UI_UNAUDITED, install_ui
from dialback.web import probes
from dialback.web.admin_audit import AdminAudit
from dialback.web.deps import admin_principal
from dialback.web.envelope import ERRORS
from dialback.web.errors import install_error_handlers
from dialback.web.fastpath import install_direct_routes
from dialback.web.middleware import CorrelationAndLimits

log = logging.getLogger("dialback.app")

ADMIN_PREFIX = "/admin/v1"
DOCS_URL = "/docs"
DOCS_ASSETS = f"{DOCS_URL}/assets"
# The Swagger UI files the installed fastapi-offline package ships: /docs fetches nothing from
# the internet (an operator's browser may have no route to a CDN, and none should be trusted).
_SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"
_SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


def admin_router() -> APIRouter:
    """Every admin route under ``/admin/v1``, each behind the admin bearer token."""
    router = APIRouter(
        prefix=ADMIN_PREFIX,
        tags=["admin"],
        dependencies=[Depends(admin_principal)],
        responses=ERRORS,
    )
    for domain in (tenants_admin, services_admin, callbacks_admin, callins_admin, logging_admin):
        router.include_router(domain.router)
    router.include_router(retention_admin.router)
    router.include_router(users_admin.router)
    router.include_router(audit_admin.router)
    return router


def _base_app(c: Container, title: str, description: str) -> FastAPI:
    app = FastAPI(
        title=title,
        version=__version__,
        description=description,
        docs_url=None,
        redoc_url=None,
    )
    app.state.container = c
    _install_docs_page(app)

    def on_unhandled(exc: BaseException) -> None:
        c.events.uncaught_exception("http")
        log.error("unhandled error", exc_info=exc)

    install_error_handlers(app, on_unhandled)
    app.add_middleware(
        CorrelationAndLimits,
        max_body_bytes=c.settings.max_body_bytes,
        on_oversize=c.events.oversize_body,
        observe=RequestObservability(c.metrics),
    )
    return app


def _install_docs_page(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` with its assets served by this app (``validatorUrl`` off: the
    badge would call an external validator)."""

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(DOCS_ASSETS + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        media_type = _SWAGGER_FILES.get(name)
        if media_type is None:
            raise NotFound(f"no documentation asset named {name!r}")
        return FileResponse(_SWAGGER_DIR / name, media_type=media_type)


def create_public_app(c: Container, *, fast_routes: bool = True) -> FastAPI:
    """The GES-compatible public Engagement API (``fast_routes``: the create route past the
    router, see ``web.fastpath``)."""
    app = _base_app(
        c,
        "dialback Engagement API",
        "GES v3 compatible callback API. Authenticate with the `x-api-key` header.",
    )
    app.include_router(callbacks_public.router)
    app.include_router(callins_public.router)
    app.include_router(statistics_public.router)
    app.include_router(callbacks_public.legacy_router)
    if fast_routes:
        install_direct_routes(app, [callbacks_public.router])
    return app


def create_internal_app(c: Container) -> FastAPI:
    """Probes, /metrics, the admin API and the Callback UI (``/ui``)."""
    app = _base_app(c, "dialback internal API", "Probes and the admin API (bearer token).")
    app.include_router(probes.router)
    app.include_router(admin_router())
    install_ui(app)
    install_direct_routes(app, [probes.router])
    # Outermost: it audits what every inner layer answered, with the corrId they assigned.
    app.add_middleware(
        AdminAudit,
        audit=c.audit,
        prefixes={ADMIN_PREFIX: "admin", UI_PREFIX: "ui"},
        unaudited=UI_UNAUDITED,
        proxies=c.settings.trusted_proxy_networks,
        tenant_of_callback=c.callbacks.tenant_name_of,
    )
    return app

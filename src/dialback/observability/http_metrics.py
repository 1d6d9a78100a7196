"""Per-request HTTP metrics as a pure-ASGI middleware (route templates, never raw paths)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialback.observability.metrics import Metrics

UNMATCHED = "unmatched"
NO_TENANT = "undefined"  # GES dashboards filter tenants with ($Tenant|undefined)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class HttpMetrics:
    """Counts requests and failures by tenant and route, and times them."""

    def __init__(self, app: ASGIApp, metrics: Metrics, skip_paths: tuple[str, ...] = ("/metrics",)) -> None:
        self.app = app
        self.requests = metrics.http_requests
        self.failed = metrics.http_failed
        self.duration = metrics.http_duration
        self.skip = skip_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED
            state = scope.get("state") or {}
            tenant = state.get("tenant")
            tenant_name = tenant.name if tenant is not None else NO_TENANT
            code = str(status)
            self.requests.inc((tenant_name, path))
            if status >= 400:
                self.failed.inc((code, path, tenant_name))
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.duration.observe((method, path, code), time.perf_counter() - start)

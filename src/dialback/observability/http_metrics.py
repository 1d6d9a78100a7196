"""Per-request observability as a pure-ASGI middleware: metrics and dialback's request line.

Labels are route templates, never raw paths; the request line replaces uvicorn's access log.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialback.observability.logging import log_context, log_request
from dialback.observability.metrics import Metrics

UNMATCHED = "unmatched"
NO_TENANT = "undefined"  # GES dashboards filter tenants with ($Tenant|undefined)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class RequestObservability:
    """Counts requests and failures by tenant and route, times them, and logs one line."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, skip_paths: tuple[str, ...] = ("/metrics",)
    ) -> None:
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
        corr = ""
        token = log_context.set({})

        async def send_wrapper(message: Message) -> None:
            nonlocal status, corr
            if message["type"] == "http.response.start":
                status = message["status"]
                for k, v in message.get("headers", ()):
                    if k == b"x-correlation-id":
                        corr = v.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED
            state = scope.get("state") or {}
            tenant = state.get("tenant")
            tenant_name = tenant.name if tenant is not None else NO_TENANT
            code = str(status)
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.requests.inc((tenant_name, path))
            if status >= 400:
                self.failed.inc((code, path, tenant_name))
            self.duration.observe((method, path, code), elapsed)
            # The correlation middleware sits inside this one and has reset its context by
            # now; the response header carries the id.
            log_request(
                logging.ERROR if status >= 500 else logging.INFO,
                method,
                path,
                status,
                elapsed,
                corr,
            )
            log_context.reset(token)

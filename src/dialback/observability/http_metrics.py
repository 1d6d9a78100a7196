"""Per-request observability: metrics and dialback's request line, for every answered request.

``RequestObservability`` is the observer ``dialback.web.middleware.CorrelationAndLimits``
calls once a request is answered (one ASGI layer does both). Labels are route templates, never
raw paths; the request line replaces uvicorn's access log.

One rule labels every request: ``path`` (and ``route``) is the full template of the route as
served (``/admin/v1/tenants/{tenant}``, prefixes included), whether the router ran or the
middleware answered first (a 413, a bad corrId or Content-Length): the template is then the
one the router would have chosen for the raw path, so labels stay as bounded as the routes.
A path no route serves is ``unmatched``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from starlette.routing import compile_path
from starlette.types import Scope

from dialback.kit.context import log_context
from dialback.observability.logging import RequestLine, log_request_lines
from dialback.observability.metrics import Metrics
from dialback.web.envelope import CORR_SCOPE_KEY
from dialback.web.fastpath import served_routes

UNMATCHED = "unmatched"
NO_TENANT = "undefined"  # GES dashboards filter tenants with ($Tenant|undefined)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class RouteTemplates:
    """The ``path`` label of a request: the full template of the route that served it, or
    would have served it had the middleware not answered first; ``unmatched`` otherwise."""

    def __init__(self, routes: Iterable[tuple[Any, str, frozenset[str]]]) -> None:
        self._by_route: dict[int, list[tuple[re.Pattern[str], str]]] = {}
        self._all: list[tuple[re.Pattern[str], str, frozenset[str]]] = []
        for route, template, methods in routes:
            regex = compile_path(template)[0]
            self._by_route.setdefault(id(route), []).append((regex, template))
            self._all.append((regex, template, methods))

    @classmethod
    def of(cls, app: Any) -> RouteTemplates:
        """The templates of every route ``app`` serves."""
        return cls(served_routes(app))

    def label(self, route: Any, method: str, path: str) -> str:
        """The template for a request routed to ``route`` (None: not routed) at ``path``."""
        if route is not None:
            templates = self._by_route.get(id(route))
            if templates:
                if len(templates) == 1:
                    return templates[0][1]
                # One route included under several prefixes: the raw path tells which.
                for regex, template in templates:
                    if regex.match(path):
                        return template
                return templates[0][1]
        fallback = None
        for regex, template, methods in self._all:
            if regex.match(path):
                if method in methods:
                    return template
                fallback = fallback or template  # the router would answer 405 here
        return fallback or UNMATCHED


class RequestObservability:
    """Counts requests and failures by tenant and route, times them, and logs one line.

    A request only leaves its facts; they are counted and logged in a batch at most
    ``DELAY`` seconds later (at once past ``MAX_PENDING``), and before every scrape of
    ``/metrics``, which therefore always counts every answered request.
    """

    DELAY = 0.01
    MAX_PENDING = 256

    def __init__(self, metrics: Metrics) -> None:
        self.requests = metrics.ges_http_requests_total
        self.failed = metrics.ges_http_failed_requests_total
        self.duration = metrics.ges_http_request_duration_seconds
        # (tenant, route, method, status) -> the three series' label values; as bounded as the
        # series themselves.
        self._labels: dict[
            tuple[str, str, str, int],
            tuple[tuple[str, str], tuple[str, str, str], tuple[str, str, str]],
        ] = {}
        self._pending: list[tuple[Any, ...]] = []
        self._log_enabled = logging.getLogger("dialback.request").isEnabledFor
        # id(app) -> its routes' templates, built on the app's first request (routes are all
        # included by then).
        self._templates: dict[int, RouteTemplates] = {}
        metrics.registry.collectors.append(self.flush)

    def __call__(self, scope: Scope, status: int, elapsed: float) -> None:
        pending = self._pending
        pending.append(
            (
                scope.get("app"),
                scope.get("route"),
                scope.get("path", ""),
                scope.get("state"),
                scope["method"],
                status,
                elapsed,
                scope.get(CORR_SCOPE_KEY, ""),
                log_context.get(),
                time.time(),
            )
        )
        if len(pending) == 1:
            try:
                asyncio.get_running_loop().call_later(self.DELAY, self.flush)
            except RuntimeError:
                self.flush()
        elif len(pending) >= self.MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        """Count and log the pending requests."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        lines: list[RequestLine] = []
        log_enabled = self._log_enabled
        for app, route, raw, state, method, status, elapsed, corr, context, created in pending:
            path = self._label(app, route, method, raw)
            tenant = state.get("tenant") if state else None
            tenant_name = tenant.name if tenant is not None else NO_TENANT
            if method not in METHODS:
                method = "OTHER"
            key = (tenant_name, path, method, status)
            labels = self._labels.get(key)
            if labels is None:
                code = str(status)
                labels = self._labels[key] = (
                    (tenant_name, path),
                    (code, path, tenant_name),
                    (method, path, code),
                )
            self.requests.inc(labels[0])
            if status >= 400:
                self.failed.inc(labels[1])
            self.duration.observe(labels[2], elapsed)
            level = logging.ERROR if status >= 500 else logging.INFO
            if log_enabled(level):
                lines.append((created, level, method, path, status, elapsed * 1000, corr, context))
        if lines:
            log_request_lines(lines)  # this batch's lines in one write

    def _label(self, app: Any, route: Any, method: str, raw_path: str) -> str:
        if app is None:  # not served by an application (unit tests of the batching)
            return getattr(route, "path", None) or UNMATCHED
        templates = self._templates.get(id(app))
        if templates is None:
            templates = self._templates[id(app)] = RouteTemplates.of(app)
        return templates.label(route, method, raw_path)

"""The Developer page: the run-time log level (shown, and changed through the code
``PUT /admin/v1/logging`` runs) and a lookup by corrId of what this replica remembers (its
ring of recent warnings and errors) and what the store holds with it (the callback state
changes it made and the audit entries)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import Response

from dialback.audit.repository import AuditFilter
from dialback.identity.roles import Permission, Principal
from dialback.kit.context import CORR_ID_RE
from dialback.observability.logging import LEVELS, change_level, current_level
from dialback.observability.recent_log import RecentRecord
from dialback.settings import LOG_LEVELS
from dialback.ui.deps import UiProblem, UiRedirect, ui_requires, ui_router
from dialback.ui.rendering import PAGES_BUILT, render
from dialback.web.deps import ContainerDep

router = ui_router()
NAV_PATHS = ("/developer",)
RECENT_SHOWN = 25
AUDIT_SHOWN = 100
EVENTS_SHOWN = 100

Developer = Annotated[Principal, ui_requires(Permission.LOGGING_WRITE)]


def _recent_rows(records: list[RecentRecord]) -> list[RecentRecord]:
    return records[:RECENT_SHOWN]


@router.get("/developer", name="ui_developer")
async def developer_page(
    request: Request,
    c: ContainerDep,
    who: Developer,
    corr_id: Annotated[str, Query(alias="corrId", max_length=2000)] = "",
    previous: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """The log level and the corrId lookup."""
    corr_id = corr_id.strip()
    ring = c.recent_log
    found: list[RecentRecord] | None = None
    audit_rows: list[object] = []
    audit_total = 0
    events: list[Any] = []
    tenant_names: dict[str, str] = {}
    more_events = False
    if corr_id:
        if not who.can(Permission.REQUESTS_LOOKUP):
            raise UiProblem(403, "Not allowed", f"{who.actor} may not look up a request by corrId.")
        # A corrId as the HTTP edge admits one in x-correlation-id (web/middleware.py).
        if not CORR_ID_RE.match(corr_id):
            raise UiProblem(
                400,
                "Bad request",
                f"corrId: {corr_id[:80]!r} is not a corrId (1-128 letters, digits, '.', '_', "
                "':' or '-', as in the x-correlation-id header or a response's corrId).",
            )
        found = ring.records(scope=who.tenants, corr_id=corr_id)
        page = await c.audit.search(
            AuditFilter(tenants=who.tenants, corr_id=corr_id), limit=AUDIT_SHOWN, offset=0
        )
        audit_rows, audit_total = list(page.rows), page.total
        made = await c.callbacks.events_with_corr_id(corr_id, who.tenants, limit=EVENTS_SHOWN)
        events, tenant_names, more_events = made.rows, made.tenant_names, made.more
    return render(
        request,
        "developer/index.html",
        level=current_level(),
        levels=LOG_LEVELS,
        previous=previous if previous in LEVELS else "",
        lookup=corr_id,
        found=found,
        audit_rows=audit_rows,
        audit_total=audit_total,
        audit_shown=AUDIT_SHOWN,
        events=events,
        tenant_names=tenant_names,
        more_events=more_events,
        events_shown=EVENTS_SHOWN,
        recent=_recent_rows(ring.records(scope=who.tenants)) if found is None else [],
        recent_shown=RECENT_SHOWN,
        held=ring.held(),
        capacity=ring.capacity,
        oldest=ring.oldest(),
        scoped=who.tenants is not None,
        can_lookup=who.can(Permission.REQUESTS_LOOKUP),
        callback_pages="/callbacks" in PAGES_BUILT,
    )


@router.post("/developer/log-level", name="set_log_level")
async def set_log_level(
    who: Developer, level: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    """Change this replica's log level, as ``PUT /admin/v1/logging`` does."""
    if who.tenants is not None:
        # The level is the whole process's, every tenant's: as the admin API's every_tenant.
        raise UiProblem(
            403,
            "Not allowed",
            f"only an operator of every tenant may change the log level; {who.actor} is scoped.",
        )
    try:
        _level, was = change_level(level)
    except ValueError as exc:
        raise UiProblem(400, "Bad request", f"level: {level[:20]!r}: {exc}") from None
    raise UiRedirect(f"/ui/developer?previous={was}")

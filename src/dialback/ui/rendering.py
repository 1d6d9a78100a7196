"""How UI pages render: the Jinja2 templates, the layout's context (operator, CSRF token,
corrId, navigation by permission, the operator's time zone) and the filters pages share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dialback.identity.roles import Permission, Principal
from dialback.ui.deps import UI_PREFIX
from dialback.web.envelope import CORR_SCOPE_KEY

TZ_COOKIE = "dialback_tz"
DEFAULT_TZ = "UTC"
STATIC_FILES = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}
# callbacks_detail: the Create form's number check.
STATIC_FILES["callbacks.js"] = "text/javascript; charset=utf-8"
STATIC_FILES |= {"services.js": "text/javascript; charset=utf-8"}  # ui-services
# ui-ops: the Health page's live refresh.
STATIC_FILES["health.js"] = "text/javascript; charset=utf-8"
STATIC_FILES["callbacks-list.js"] = "text/javascript; charset=utf-8"  # the callbacks list
"""The UI's own assets (``ui/static``), by name and media type; nothing from elsewhere."""
STATIC_FILES["admin.js"] = "text/javascript; charset=utf-8"  # tenants, users: copy a secret

templates = jinja2.Environment(
    loader=jinja2.PackageLoader("dialback.ui", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class NavItem:
    """One entry of the top navigation, shown to those with ``permission``."""

    label: str
    path: str  # below /ui
    permission: Permission
    every_tenant: bool = False  # only for an operator of every tenant


NAV: tuple[NavItem, ...] = (
    NavItem("Callbacks", "/callbacks", Permission.CALLBACKS_READ),
    NavItem("Create", "/callbacks/new", Permission.CALLBACKS_WRITE),
    NavItem("Services", "/services", Permission.SERVICES_READ),
    NavItem("Call-in", "/callins", Permission.CALLINS_READ),
    NavItem("Health", "/health", Permission.HEALTH_READ),
    NavItem("Developer", "/developer", Permission.LOGGING_WRITE),
    NavItem("Tenants", "/tenants", Permission.TENANTS_WRITE),
    NavItem("Users", "/users", Permission.USERS_READ, every_tenant=True),
)
"""Pages not built yet are simply not listed in ``PAGES_BUILT``."""

PAGES_BUILT: set[str] = set()
"""The NAV paths whose pages are installed (each page module adds its own when imported)."""


def operator_zone(request: Request) -> ZoneInfo:
    """The operator's chosen time zone (cookie ``dialback_tz``), UTC when none or unknown."""
    name = request.cookies.get(TZ_COOKIE, DEFAULT_TZ)
    return zone_named(name) or ZoneInfo(DEFAULT_TZ)


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone ``name``, or None."""
    if not name or len(name) > 64 or name not in _zones():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones() | {"UTC"})
    return _ZONES


def zone_names() -> list[str]:
    """Every zone an operator may choose, sorted."""
    return sorted(_zones())


def _time_filter(zone: ZoneInfo) -> Any:
    def show(ts: float | None, fmt: str = "%Y-%m-%d %H:%M") -> Markup:
        """``<time>`` in the operator's zone, the UTC value in its title (shown on hover)."""
        if ts is None:
            return Markup('<span class="muted">—</span>')
        at = datetime.fromtimestamp(float(ts), UTC)
        utc = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        local = at.astimezone(zone).strftime(fmt)
        return Markup('<time datetime="{0}" title="{0} UTC">{1}</time>').format(utc, local)

    return show


STATE_CLASSES = {
    "SCHEDULED": "st-scheduled",
    "QUEUED": "st-queued",
    "ROUTING": "st-routing",
    "PROCESSING": "st-processing",
    "COMPLETED": "st-completed",
}


def state_badge(state: str | None) -> Markup:
    """A callback state as a badge: colour *and* text."""
    name = state or "UNKNOWN"
    return Markup('<span class="badge {0}">{1}</span>').format(
        STATE_CLASSES.get(name, "st-unknown"), escape(name)
    )


def nav_for(principal: Principal | None) -> list[NavItem]:
    """The navigation entries ``principal`` may use (pages that exist only)."""
    if principal is None:
        return []
    return [
        n
        for n in NAV
        if n.path in PAGES_BUILT
        and principal.can(n.permission)
        and (principal.unscoped or not n.every_tenant)
    ]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page of the UI, with the layout's operator, CSRF token, corrId, navigation and time
    zone."""
    session = getattr(request.state, "ui_session", None)
    principal = session.principal if session is not None else None
    zone = operator_zone(request)
    base_path = str(request.scope.get("root_path", "")) + UI_PREFIX
    here = request.url.path.removeprefix(base_path)
    nav = nav_for(principal)
    # The most specific entry the page is under ("/callbacks/new" over "/callbacks").
    under = [n.path for n in nav if here == n.path or here.startswith(n.path + "/")]
    base: dict[str, Any] = {
        "base": base_path,
        "corr_id": request.scope.get(CORR_SCOPE_KEY, ""),
        "principal": principal,
        "csrf_token": session.csrf_token if session is not None else "",
        "nav": nav,
        "current_nav": max(under, key=len) if under else "",
        "zone": zone.key,
        "at": _time_filter(zone),
        "state_badge": state_badge,
    }
    html = templates.get_template(template).render(**{**base, **context})
    return HTMLResponse(html, status_code=status_code)

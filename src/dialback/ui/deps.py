"""The typed dependencies of the UI pages: the session, the operator, the permission a page
requires within the tenant scope of its path, and the CSRF check of every state-changing
request under ``/ui``."""

from __future__ import annotations

import hmac
import ipaddress
import posixpath
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request

from dialback.identity.roles import Permission, Principal
from dialback.identity.sessions import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Session
from dialback.kit.context import bind
from dialback.settings import Settings
from dialback.web.deps import container_of, refusal

_UNREAD = object()
UI_PREFIX = "/ui"
LOGIN_PATH = f"{UI_PREFIX}/login"
HOME_PATH = f"{UI_PREFIX}/"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PRE_SESSION_PATHS = frozenset({LOGIN_PATH})
"""Forms posted before there is a session: protected by the double-submit cookie instead."""


class UiRedirect(Exception):
    """Answer 303 to ``location`` (a path under the app's root)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class UiProblem(Exception):
    """Answer the error page with ``status``, a title and a message naming the problem."""

    def __init__(
        self, status: int, title: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.headers = headers or {}


def ui_path(request: Request) -> str:
    """The request's path below the app's root path."""
    path: str = request.scope.get("path", "")
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def is_ui_request(request: Request) -> bool:
    """Whether the request is for a page under ``/ui``."""
    path = ui_path(request)
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def safe_next(value: str | None) -> str:
    """``value`` when it is a relative path under ``/ui`` (never another site: no open
    redirect), else the home page."""
    if not value or len(value) > 500 or "\\" in value:
        return HOME_PATH
    if any(not ch.isprintable() or ch.isspace() for ch in value):
        return HOME_PATH
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or value.startswith("//"):
        return HOME_PATH
    path = posixpath.normpath(parts.path)
    if path != UI_PREFIX and not path.startswith(UI_PREFIX + "/"):
        return HOME_PATH
    if parts.path.endswith("/") and not path.endswith("/"):
        path += "/"
    return path + (f"?{parts.query}" if parts.query else "")


def login_location(request: Request) -> str:
    """The sign-in page, coming back to this request's page afterwards."""
    here = ui_path(request)
    if request.url.query:
        here += f"?{request.url.query}"
    target = safe_next(here)
    if target == HOME_PATH:
        return LOGIN_PATH
    return f"{LOGIN_PATH}?next={quote(target, safe='/')}"


def is_https(request: Request, settings: Settings) -> bool:
    """Whether the browser reached us over TLS: directly, or through a trusted proxy that says
    so in X-Forwarded-Proto."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client is not None else ""
    if _from_trusted_proxy(peer, settings):
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return proto == "https"
    return False


def _from_trusted_proxy(peer: str, settings: Settings) -> bool:
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(ip in net for net in settings.trusted_proxy_networks)


def cookie_secure(request: Request, settings: Settings) -> bool:
    """Whether cookies get the Secure attribute: the request came over TLS, the UI's public URL
    is https (DIALBACK_UI_URL), or DIALBACK_SESSION_COOKIE_SECURE."""
    if settings.session_cookie_secure or is_https(request, settings):
        return True
    return bool(settings.ui_url and settings.ui_url.startswith("https://"))


def own_origin(request: Request, settings: Settings) -> str:
    """The origin the browser sees this UI at (``DIALBACK_UI_URL`` when set)."""
    if settings.ui_url:
        parts = urlsplit(settings.ui_url)
        return f"{parts.scheme}://{parts.netloc}".lower()
    scheme = "https" if is_https(request, settings) else request.url.scheme
    host = request.headers.get("host", request.url.netloc)
    return f"{scheme}://{host}".lower()


async def current_session(request: Request) -> Session | None:
    """The request's live session, or None (read once per request)."""
    if getattr(request.state, "ui_session", _UNREAD) is _UNREAD:
        c = container_of(request)
        session = await c.sessions.resolve(request.cookies.get(SESSION_COOKIE))
        request.state.ui_session = session
        if session is not None:
            request.state.principal = session.principal
            bind(actor=session.principal.actor)
    found: Session | None = request.state.ui_session
    return found


async def ui_session(request: Request) -> Session:
    """The live session; a page asked without one goes to the sign-in page."""
    session = await current_session(request)
    if session is None:
        if request.method in SAFE_METHODS:
            raise UiRedirect(login_location(request))
        raise UiProblem(
            401,
            "Not signed in",
            "You are not signed in, or your session has ended. Sign in again.",
        )
    return session


UiSessionDep = Annotated[Session, Depends(ui_session)]
"""The live session of a page that needs one."""


async def ui_principal(session: UiSessionDep) -> Principal:
    """The operator signed in."""
    return session.principal


UiPrincipalDep = Annotated[Principal, Depends(ui_principal)]
"""The operator of a page that needs one."""


class UiRequire:
    """The dependency of a page or action: the operator, allowed ``permission``, within the
    scope of the path's ``{tenant}`` (as the admin API's ``requires``: every UI route with a
    tenant in its path is checked, whatever the page); ``every_tenant``: only an operator of
    every tenant (the page acts on what belongs to no one tenant)."""

    def __init__(self, permission: Permission, *, every_tenant: bool = False) -> None:
        self.permission = permission
        self.every_tenant = every_tenant

    async def __call__(self, request: Request, principal: UiPrincipalDep) -> Principal:
        refused = refusal(request, principal, self.permission, every_tenant=self.every_tenant)
        if refused is not None:
            raise UiProblem(403, "Not allowed", f"{refused}.")
        return principal


def ui_requires(permission: Permission, *, every_tenant: bool = False) -> Any:
    """``Depends`` on ``UiRequire(permission, every_tenant=...)``: for a route's
    ``dependencies`` or a parameter (``who: Annotated[Principal, ui_requires(...)]``)."""
    return Depends(UiRequire(permission, every_tenant=every_tenant))


def _csrf_refused(message: str) -> UiProblem:
    return UiProblem(403, "Request refused (CSRF)", message)


def check_origin(request: Request, settings: Settings) -> None:
    """403 when Origin (or, without it, Referer) names another site than this UI."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if not referer:
            return
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
        source = "Referer"
    else:
        source = "Origin"
    allowed = {own_origin(request, settings)}
    if origin.lower() not in allowed:
        raise _csrf_refused(
            f"the form was sent from another site ({source}: {origin[:100]}), not from this UI."
        )


async def csrf_protect(request: Request) -> None:
    """Every POST/PUT/PATCH/DELETE under ``/ui``: the Origin/Referer check, then the session's
    CSRF token (a hidden form field ``csrf_token`` or the ``X-CSRF-Token`` header); the
    sign-in form, before any session, the double-submit cookie's token."""
    if request.method in SAFE_METHODS:
        return
    c = container_of(request)
    check_origin(request, c.settings)
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    if ui_path(request) in PRE_SESSION_PATHS:
        expected = await c.sessions.unsign(request.cookies.get(LOGIN_CSRF_COOKIE))
        if expected is None:
            raise _csrf_refused(
                "the sign-in form has expired or cookies are off: reload the sign-in page."
            )
    else:
        session = await ui_session(request)
        expected = session.csrf_token
    if not given:
        raise _csrf_refused("the form's CSRF token is missing: reload the page and try again.")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise _csrf_refused("the form's CSRF token is wrong: reload the page and try again.")


def ui_router(**kwargs: Any) -> APIRouter:
    """A router of UI pages: under ``/ui``, out of the OpenAPI document, every state-changing
    route behind ``csrf_protect``. Build every UI router with it (a test holds that every
    POST/PUT/PATCH/DELETE under ``/ui`` has the check)."""
    return APIRouter(
        prefix=UI_PREFIX,
        include_in_schema=False,
        dependencies=[Depends(csrf_protect), *kwargs.pop("dependencies", [])],
        **kwargs,
    )

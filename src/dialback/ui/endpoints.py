"""The sign-in pages of the Callback UI (local form, OIDC redirect and callback, logout) and
its home page; ``install_ui`` mounts them on the internal app with their error pages and
security headers."""

from __future__ import annotations

import inspect
import logging
import secrets
from collections.abc import Sequence
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialback.identity.bruteforce import TooManyAttempts
from dialback.identity.oidc import OidcClient, OidcError, OidcUnavailable
from dialback.identity.roles import PERMISSION_TEXT
from dialback.identity.sessions import (
    FLOW_COOKIE,
    FLOW_SECONDS,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
)
from dialback.identity.signin import (
    Client,
    FlowExpired,
    NewSession,
    NoRole,
    ProviderRefused,
    SignInFailed,
)
from dialback.identity.users import BadCredentials
from dialback.kit.errors import ApiError
from dialback.ui.deps import (
    HOME_PATH,
    LOGIN_PATH,
    UI_PREFIX,
    UiProblem,
    UiRedirect,
    UiSessionDep,
    cookie_secure,
    current_session,
    is_https,
    is_ui_request,
    safe_next,
    ui_router,
)
from dialback.ui.pages import built_paths, page_routers
from dialback.ui.rendering import (
    PAGES_BUILT,
    STATIC_FILES,
    TZ_COOKIE,
    render,
    zone_named,
    zone_names,
)
from dialback.web.client import client_address
from dialback.web.deps import ContainerDep, container_of
from dialback.web.errors import describe_validation_errors

log = logging.getLogger("dialback.ui")

CALLBACK_PATH = f"{UI_PREFIX}/auth/callback"
UI_UNAUDITED = frozenset(
    {
        LOGIN_PATH,
        f"{UI_PREFIX}/logout",
        CALLBACK_PATH,
        f"{UI_PREFIX}/preferences",
        f"{UI_PREFIX}/callbacks/cancel",
    }
)
"""UI paths left out of the generic audit: sign-in and sign-out audit themselves (with the
reason of a failure); a display preference and the bulk-cancel preview (a POST only because
250 ids do not fit a URL; its confirm is audited) change nothing of the service."""
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "x-frame-options": "DENY",
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the UI's own
    # form posts (which the CSRF check must refuse); the code in the callback URL still never
    # leaves for another site.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}

router = ui_router()


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")) + UI_PREFIX


def _at_root(request: Request, path: str) -> str:
    return str(request.scope.get("root_path", "")) + path


def _redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(_at_root(request, path), status_code=303)


def _set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    path: str = UI_PREFIX,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=_at_root(request, path),
        secure=cookie_secure(request, container_of(request).settings),
        httponly=True,
        samesite="lax",
    )


def _clear_cookie(request: Request, response: Response, name: str, path: str = UI_PREFIX) -> None:
    response.delete_cookie(
        name,
        path=_at_root(request, path),
        secure=cookie_secure(request, container_of(request).settings),
        httponly=True,
        samesite="lax",
    )


def _address(request: Request) -> str:
    return client_address(request, container_of(request).settings.trusted_proxy_networks)


async def _login_page(
    request: Request,
    status: int = 200,
    *,
    next_path: str = HOME_PATH,
    error: str = "",
    notice: str = "",
    username: str = "",
) -> HTMLResponse:
    c = container_of(request)
    token = await c.sessions.unsign(request.cookies.get(LOGIN_CSRF_COOKIE))
    fresh = token is None
    if token is None:
        token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        status,
        login_csrf=token,
        next_path=next_path if next_path != HOME_PATH else "",
        error=error,
        notice=notice,
        username=username[:200],
        oidc_name=c.oidc.display_name if c.oidc is not None else "",
    )
    if fresh:
        _set_cookie(request, response, LOGIN_CSRF_COOKIE, await c.sessions.sign(token))
    return response


async def _client(request: Request) -> Client:
    return Client(
        _address(request),
        request.headers.get("user-agent", ""),
        await current_session(request),
    )


def _session_started(request: Request, new: NewSession) -> RedirectResponse:
    response = _redirect(request, safe_next(new.return_to))
    _set_cookie(request, response, SESSION_COOKIE, new.cookie)
    return response


@router.get("/login", name="ui_login")
async def login_form(
    request: Request,
    next: Annotated[str, Query(max_length=500)] = "",
    signed_out: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """The sign-in page (a signed-in operator goes straight on)."""
    target = safe_next(next)
    if await current_session(request) is not None:
        return _redirect(request, target)
    notice = "You have signed out." if signed_out else ""
    return await _login_page(request, next_path=target, notice=notice)


@router.post("/login", name="ui_login_submit")
async def login_submit(
    request: Request,
    c: ContainerDep,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Check a local user name and password; on success a new session and a 303 onwards."""
    target = safe_next(next)
    if not username.strip() or not password:
        return await _login_page(
            request,
            400,
            next_path=target,
            error="Enter your user name and password.",
            username=username,
        )
    try:
        new = await c.signin.with_password(
            username, password, await _client(request), c.attempts, target
        )
    except BadCredentials as exc:
        log.info("sign-in failed from %s: %s", _address(request), exc.reason)
        return await _login_page(
            request,
            401,
            next_path=target,
            error="Wrong user name or password.",
            username=username,
        )
    return _session_started(request, new)


def _oidc(c: Any) -> OidcClient:
    if c.oidc is None:
        raise UiProblem(404, "Single sign-on is not configured", "Sign in with a local account.")
    oidc: OidcClient = c.oidc
    return oidc


def redirect_uri(request: Request) -> str:
    """The OIDC redirect URI: under DIALBACK_UI_URL when set, else this request's origin."""
    settings = container_of(request).settings
    if settings.ui_url:
        return settings.ui_url.rstrip("/") + CALLBACK_PATH
    scheme = "https" if is_https(request, settings) else request.url.scheme
    host = request.headers.get("host", request.url.netloc)
    return f"{scheme}://{host}{_at_root(request, CALLBACK_PATH)}"


@router.get("/login/oidc", name="ui_login_oidc")
async def login_oidc(
    request: Request, c: ContainerDep, next: Annotated[str, Query(max_length=500)] = ""
) -> Response:
    """Start an OIDC sign-in: keep the flow, bind it to this browser, send it to the provider."""
    try:
        url, binding = await c.signin.start_oidc(
            _oidc(c), redirect_uri(request), safe_next(next), await _client(request), c.attempts
        )
    except OidcError as exc:
        raise _provider_problem(exc) from None
    response = RedirectResponse(url, status_code=303)
    _set_cookie(
        request, response, FLOW_COOKIE, binding, path=f"{UI_PREFIX}/auth", max_age=FLOW_SECONDS
    )
    return response


def _provider_problem(exc: OidcError) -> UiProblem:
    if isinstance(exc, OidcUnavailable):
        return UiProblem(
            503,
            "Sign-in provider unavailable",
            f"The single sign-on provider cannot be reached now ({exc}). Try again shortly, "
            "or sign in with a local account.",
        )
    return UiProblem(401, "Sign-in refused", f"Single sign-on did not sign you in: {exc}")


_FAILURE_PAGES: dict[type[SignInFailed], tuple[int, str]] = {
    ProviderRefused: (401, "Sign-in refused"),
    FlowExpired: (400, "Sign-in expired"),
    NoRole: (403, "No role"),
}


@router.get("/auth/callback", name="ui_auth_callback")
async def auth_callback(
    request: Request,
    c: ContainerDep,
    code: Annotated[str, Query(max_length=4096)] = "",
    state: Annotated[str, Query(max_length=500)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
    error_description: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    """The provider sends the browser back here with a code (or an error)."""
    oidc = _oidc(c)
    try:
        new = await c.signin.finish_oidc(
            oidc,
            state=state,
            binding=request.cookies.get(FLOW_COOKIE),
            code=code,
            error=error,
            error_description=error_description,
            redirect_uri=redirect_uri(request),
            client=await _client(request),
            attempts=c.attempts,
        )
    except SignInFailed as exc:
        status, title = _FAILURE_PAGES.get(type(exc), (401, "Sign-in refused"))
        raise UiProblem(status, title, exc.message) from None
    except OidcError as exc:
        raise _provider_problem(exc) from None
    response = _session_started(request, new)
    _clear_cookie(request, response, FLOW_COOKIE, path=f"{UI_PREFIX}/auth")
    return response


@router.post("/logout", name="ui_logout")
async def logout(request: Request, c: ContainerDep, session: UiSessionDep) -> Response:
    """End the session in the store and forget the cookie."""
    await c.signin.logout(session, _address(request))
    request.state.ui_session = None
    response = _redirect(request, f"{LOGIN_PATH}?signed_out=1")
    _clear_cookie(request, response, SESSION_COOKIE)
    return response


@router.get("/", name="ui_home")
async def home(request: Request, session: UiSessionDep) -> Response:
    """Who you are, your roles and scope, and when the session ends."""
    p = session.principal
    return render(
        request,
        "home.html",
        signed_in=session.created_at,
        ends_at=session.ends_at,
        expires_at=session.expires_at,
        idle_minutes=f"{session.idle_seconds / 60:g}",
        permissions=[PERMISSION_TEXT[perm] for perm in sorted(p.permissions)],
    )


@router.get("/preferences", name="ui_preferences")
async def preferences(request: Request, session: UiSessionDep) -> Response:
    """The operator's display preferences: the time zone times are shown in."""
    return render(request, "preferences.html", zones=zone_names())


@router.post("/preferences", name="ui_preferences_save")
async def save_preferences(
    request: Request, session: UiSessionDep, tz: Annotated[str, Form(max_length=64)]
) -> Response:
    """Keep the chosen time zone in a cookie (a display preference, nothing secret)."""
    if zone_named(tz) is None:
        raise UiProblem(400, "Bad request", f"tz: {tz[:64]!r} is not a known IANA time zone")
    response = _redirect(request, HOME_PATH)
    _set_cookie(request, response, TZ_COOKIE, tz, path=UI_PREFIX, max_age=400 * 86400)
    return response


@router.get("", name="ui_root")
async def root(request: Request) -> Response:
    """``/ui`` is ``/ui/``."""
    return _redirect(request, HOME_PATH)


@router.get("/static/{name}", name="ui_static")
async def static(name: str) -> Response:
    """The UI's own stylesheet and script (nothing from elsewhere)."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise UiProblem(404, "Not found", f"no UI asset named {name[:64]!r}")
    data = resources.files("dialback.ui").joinpath("static", name).read_bytes()
    return Response(data, media_type=media_type)


def problem_page(
    request: Request, status: int, title: str, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The error page (status, what went wrong, the corrId)."""
    response = render(
        request,
        "error.html",
        status,
        status=status,
        title=title,
        message=message,
        retry_after=(headers or {}).get("Retry-After", ""),
    )
    response.headers.update(headers or {})
    return response


_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Conflict",
    429: "Too many attempts",
    503: "Temporarily unavailable",
}


class UiSecurityHeaders:
    """Adds the UI's security headers (strict CSP, no framing, no referrer, no caching) to
    every answer under ``/ui``, error pages included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if not (path == UI_PREFIX or path.startswith(UI_PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.encode() for k in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _delegate(handler: Any, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, Response)
    return result


def install_ui(app: FastAPI, pages: Sequence[APIRouter] = ()) -> None:
    """Mount the UI at ``/ui``: the sign-in pages, every page module (``ui.pages``) and
    ``pages`` (more routers made by ``ui_router``), HTML error pages and security headers."""
    app.include_router(router)
    for extra in (*page_routers(), *pages):
        app.include_router(extra)
    PAGES_BUILT.update(built_paths())
    api_error = app.exception_handlers[ApiError]
    validation_error = app.exception_handlers[RequestValidationError]
    http_error = app.exception_handlers[StarletteHTTPException]

    async def on_redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UiRedirect)
        return _redirect(request, exc.location)

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UiProblem)
        return problem_page(request, exc.status, exc.title, exc.message, exc.headers)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        if not is_ui_request(request):
            return await _delegate(api_error, request, exc)
        assert isinstance(exc, ApiError)
        headers = (
            {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyAttempts) else None
        )
        title = _TITLES.get(exc.status, "Request failed")
        return problem_page(request, exc.status, title, exc.message, headers)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        if not is_ui_request(request):
            return await _delegate(validation_error, request, exc)
        assert isinstance(exc, RequestValidationError)
        return problem_page(request, 400, "Bad request", describe_validation_errors(exc.errors()))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        if not is_ui_request(request):
            return await _delegate(http_error, request, exc)
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        message = "No such page." if status == 404 else str(exc.detail)
        return problem_page(request, status, _TITLES.get(status, "Request failed"), message)

    app.add_exception_handler(UiRedirect, on_redirect)
    app.add_exception_handler(UiProblem, on_problem)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_middleware(UiSecurityHeaders)

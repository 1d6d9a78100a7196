"""The audit of the admin API and the Callback UI: every state-changing call (allowed, refused or
failed) and every refused admin credential, written before the answer leaves (an acknowledged
change is audited)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialback.audit.service import AuditLog
from dialback.identity.roles import Principal
from dialback.kit.addresses import Network
from dialback.kit.context import audit_note_var, corr_id_var
from dialback.web.client import client_address
from dialback.web.envelope import CORR_SCOPE_KEY
from dialback.web.fastpath import served_routes

log = logging.getLogger("dialback.audit")
# How long the entry of a call on a callback waits for the callback's tenant (read after it).
_LOOKUP_SECONDS = 1.0
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_CALLBACK_PATH = re.compile(r"/callbacks/([0-9a-fA-F-]{36})(?:/|$)")
# A created object's name in the answer (POST /tenants, POST /users, the dial-in match).
_MAX_PARSED_BODY = 256 * 1024
# Which object a route acts on, from its path: the segment before a parameter names its type.
_OBJECT_TYPES = {
    "callbacks": "callback",
    "services": "service",
    "callin-groups": "callin_group",
    "callins": "callin_group",
    "api-keys": "api_key",
    "users": "user",
    "tenants": "tenant",
}

TenantOfCallback = Callable[[str], Awaitable[str | None]]


def _outcome(status: int) -> str:
    if status in (401, 403):
        return "denied" if status == 403 else "failed"
    return "ok" if status < 400 else "failed"


def _object_of(path: str, params: dict[str, Any], answer: Any) -> tuple[str, str]:
    """(type, id) of what a call acted on: the last path parameter, else the answer's name/id."""
    parts = [p for p in path.split("/") if p]
    values = set(params.values())
    for i in range(len(parts) - 1, 0, -1):
        value = parts[i]
        if value in values and parts[i - 1] in _OBJECT_TYPES:
            return _OBJECT_TYPES[parts[i - 1]], value
        # The UI's /services/{tenant}/{name}: the type before the tenant names the last one.
        if value in values and i >= 2 and parts[i - 1] in values and parts[i - 2] in _OBJECT_TYPES:
            return _OBJECT_TYPES[parts[i - 2]], value
    last = parts[-1] if parts else ""
    kind = _OBJECT_TYPES.get(last, last.replace("-", "_"))
    if isinstance(answer, dict):
        for key in ("name", "username", "id"):
            if isinstance(answer.get(key), str):
                return kind, answer[key]
    return kind, ""


def _created_at(location: str) -> tuple[str, str] | None:
    """(type, id) of the object a page redirected to after a create (``/ui/tenants/gamma``)."""
    parts = [p for p in urlsplit(location).path.split("/") if p]
    if len(parts) >= 2 and parts[-2] in _OBJECT_TYPES and parts[-1] != "new":
        return _OBJECT_TYPES[parts[-2]], unquote(parts[-1])
    return None


class AdminAudit:
    """Pure-ASGI middleware of the internal app, outside everything else (it sees the corrId
    the inner layer assigned and the answer every layer gave)."""

    def __init__(
        self,
        app: ASGIApp,
        audit: AuditLog,
        *,
        prefixes: dict[str, str],
        proxies: tuple[Network, ...],
        tenant_of_callback: TenantOfCallback,
        unaudited: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.audit = audit
        # path prefix -> the prefix of its actions ("/admin/v1" -> "admin": admin.cancel_callback)
        self.prefixes = prefixes
        # Paths that audit themselves (sign-in, sign-out) or change nothing of the service.
        self.unaudited = unaudited
        self.proxies = proxies
        self.tenant_of_callback = tenant_of_callback
        self._templates: dict[int, str] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def _template(self, scope: Scope, route: Any) -> str | None:
        # Routers included lazily name the route without the prefixes it is served under.
        if self._templates is None and scope.get("app") is not None:
            self._templates = {id(r): path for r, path, _ in served_routes(scope["app"])}
        return (self._templates or {}).get(id(route))

    async def _tenant_of(self, callback_id: str, answer: Any) -> str | None:
        # The answer names it (a callback's detail; an erasure's audit row, the row itself being
        # gone); else the store, read after the call, so that the call never waits for it.
        if isinstance(answer, dict):
            for holder in (answer, answer.get("audit")):
                if isinstance(holder, dict) and isinstance(holder.get("tenant"), str):
                    return str(holder["tenant"])
        try:
            return await asyncio.wait_for(self.tenant_of_callback(callback_id), _LOOKUP_SECONDS)
        except Exception as exc:
            log.debug("audit: the tenant of callback %s is unknown: %s", callback_id, exc)
            return None

    def _action_prefix(self, path: str) -> str | None:
        for prefix, action in self.prefixes.items():
            if path == prefix or path.startswith(prefix + "/"):
                return None if path in self.unaudited else action
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = self._action_prefix(scope["path"]) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] in _READS:
            if kind == "admin":  # a refused admin credential; the UI redirects to sign-in
                await self._read(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        match = _CALLBACK_PATH.search(scope["path"])
        callback_id = match.group(1).lower() if match else None
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            else:
                await send(message)

        note: dict[str, Any] = {}
        note_token = audit_note_var.set(note)
        try:
            await self.app(scope, receive, hold)
        finally:
            audit_note_var.reset(note_token)
            if start is not None:
                body = b"".join(chunks)
                status = start["status"]
                location = next(
                    (v.decode("latin-1") for k, v in start.get("headers", []) if k == b"location"),
                    "",
                )
                entry = self._record(scope, status, body, callback_id, kind, location, note)
                if status >= 500:
                    # Nothing was done (a dependency is down or a bug): the answer does not wait
                    # for an entry the same outage would hold up.
                    task = asyncio.create_task(entry)
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)
                else:
                    await entry
                await send(start)
                await send({"type": "http.response.body", "body": body})

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status == 401:  # a refused credential is audited whatever the method
            await self._record(scope, status, b"", None, "admin")

    async def _record(
        self,
        scope: Scope,
        status: int,
        body: bytes,
        callback_id: str | None,
        kind: str,
        location: str = "",
        note: dict[str, Any] | None = None,
    ) -> None:
        envelope = _envelope(body)
        answer = envelope.get("data") if isinstance(envelope, dict) else None
        status_block = envelope.get("status") if isinstance(envelope, dict) else None
        route = scope.get("route")
        params: dict[str, Any] = scope.get("path_params") or {}
        template = self._template(scope, route) if route is not None else None
        params_tenant = params.get("tenant")
        tenant = params_tenant if isinstance(params_tenant, str) else None
        if tenant is None and callback_id is not None and status < 500:
            tenant = await self._tenant_of(callback_id, answer)
        principal = (scope.get("state") or {}).get("principal")
        actor: Principal | str = principal if isinstance(principal, Principal) else "anonymous"
        object_type, object_id = _object_of(scope["path"], params, answer)
        if not object_id and location and status < 400:
            # A page answers a create with a redirect to what it made.
            made = _created_at(location)
            if made is not None:
                object_type, object_id = made
                if made[0] == "callback" and callback_id is None:
                    callback_id = object_id
        detail: dict[str, Any] = {
            "method": scope["method"],
            "route": template or "(no route)",
            "status": status,
        }
        if status < 400 and note:
            detail.update(note)  # what the use case changed (note_for_audit)
        if status >= 400 and isinstance(status_block, dict):
            detail["message"] = str(status_block.get("message", ""))
        if status == 401 and kind == "admin":
            action = "admin.authentication_failed"
        else:
            action = f"{kind}." + (getattr(route, "name", None) or "unknown_route")
        corr = str(scope.get(CORR_SCOPE_KEY, ""))
        # Outside the layer that binds the corrId for the request: bind it for the entry's log line.
        token = corr_id_var.set(corr)
        try:
            await self._write(
                scope,
                actor,
                action,
                object_type,
                object_id,
                tenant,
                callback_id,
                status,
                corr,
                detail,
            )
        finally:
            corr_id_var.reset(token)

    async def _write(
        self,
        scope: Scope,
        actor: Principal | str,
        action: str,
        object_type: str,
        object_id: str,
        tenant: str | None,
        callback_id: str | None,
        status: int,
        corr: str,
        detail: dict[str, Any],
    ) -> None:
        await self.audit.record(
            actor,
            action,
            object_type=object_type,
            object_id=object_id,
            tenant=tenant,
            callback_id=callback_id,
            outcome=_outcome(status),
            address=client_address(HTTPConnection(scope), self.proxies),
            corr_id=corr,
            detail=detail,
        )


def _envelope(body: bytes) -> Any:
    if not body or len(body) > _MAX_PARSED_BODY:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None

"""The one ASGI layer in front of both apps: corrId, body limits, the 500/503 envelopes, and
the hand-over of every answered request to the observer (metrics and the request line)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialback.kit.context import CORR_ID_RE, corr_id_var, log_context
from dialback.kit.errors import is_dependency_error
from dialback.web.envelope import (
    CORR_SCOPE_KEY,
    DEPENDENCY_DOWN_MESSAGE,
    INTERNAL_ERROR_MESSAGE,
    error_response,
    new_corr_id,
)

log = logging.getLogger("dialback.http")
_DIGITS_RE = re.compile(rb"^[0-9]+$")
# The Retry-After of a 503 (a dependency down): long enough not to hammer a restarting store,
# short enough that a client retrying with the same Idempotency-Key books within seconds.
DEPENDENCY_RETRY_AFTER = "2"
# install_error_handlers keeps its ``on_unhandled`` here for the middleware's last-resort 500.
UNHANDLED_STATE_KEY = "dialback_on_unhandled"


class BodyTooLarge(StarletteHTTPException):
    """413 raised while the body streams in; an HTTPException so FastAPI's body reader
    re-raises it instead of turning it into a generic 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


RequestObserver = Callable[[Scope, int, float], None]


class _Response:
    """What a request answered: its status once the response has started (0 before)."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 0


class CorrelationAndLimits:
    """Pure-ASGI middleware: assigns the corrId, enforces the maximum body size, answers the
    500 and 503 envelopes, and hands every answered request to ``observe`` (metrics and the
    request line: ``observability.http_metrics.RequestObservability``) with its status and
    duration. One layer for all of it: each ASGI layer costs every request."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        on_oversize: Callable[[], None],
        observe: RequestObserver | None = None,
        unobserved: tuple[str, ...] = ("/metrics",),
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.on_oversize = on_oversize
        self.observe = observe
        self.unobserved = unobserved

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = _Response()
        observe = self.observe
        if observe is None or scope["path"] in self.unobserved:
            await self._serve(scope, receive, send, response)
            return
        start = time.perf_counter()
        # Fields bound while serving (tenant, callbackId) belong to this request's line only.
        token = log_context.set({})
        try:
            await self._serve(scope, receive, send, response)
        finally:
            # Not started: the exception goes on to the server's 500 answer.
            observe(scope, response.status or 500, time.perf_counter() - start)
            log_context.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, response: _Response) -> None:
        corr = None
        lengths: set[bytes] = set()
        for k, v in scope["headers"]:
            if k == b"x-correlation-id":
                corr = v.decode("latin-1")
            elif k == b"content-length":
                lengths.add(v.strip())
        if corr is not None and not CORR_ID_RE.match(corr):
            scope[CORR_SCOPE_KEY] = corr = new_corr_id()
            await self._reject(
                send,
                response,
                corr,
                400,
                "header x-correlation-id must be 1-128 characters of letters, digits, "
                "'.', '_', ':' or '-'",
            )
            return
        corr = corr or new_corr_id()
        # Kept in the scope too: the 500 handler and the request line run outside this
        # middleware's context.
        scope[CORR_SCOPE_KEY] = corr
        if len(lengths) > 1 or any(not _DIGITS_RE.match(v) for v in lengths):
            await self._reject(
                send, response, corr, 400, "header content-length is not a valid number"
            )
            return
        length = next(iter(lengths), b"")
        # More than 18 digits is over any limit (and int() refuses thousands of digits).
        if length and (len(length) > 18 or int(length) > self.max_body_bytes):
            self.on_oversize()
            await self._reject(
                send,
                response,
                corr,
                413,
                f"request body exceeds the limit of {self.max_body_bytes} bytes",
            )
            return

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.status = message["status"]
            await send(message)

        token = corr_id_var.set(corr)
        try:
            await self.app(scope, self._limited(receive), tracking_send)
        except ClientDisconnect:
            # The client left before its body was read (or the HTTP edge cut a body that did not
            # arrive in time, web/edge.py): no one to answer and not a bug.
            log.debug("client disconnected before its request body was read")
        except Exception as exc:
            # A bug, not the client: answer the 500 envelope here, with this request's corrId,
            # and report it once, instead of letting the exception escape the application.
            report = getattr(getattr(scope.get("app"), "state", None), UNHANDLED_STATE_KEY, None)
            if response.status or report is None:
                raise
            if is_dependency_error(exc):
                # The store or a Redis is unreachable: not a bug and not the client's fault.
                log.warning(
                    "request failed, a dependency is unavailable: %s: %s", type(exc).__name__, exc
                )
                await self._reject(
                    send,
                    response,
                    corr,
                    503,
                    DEPENDENCY_DOWN_MESSAGE,
                    headers={"retry-after": DEPENDENCY_RETRY_AFTER},
                )
                return
            report(exc)
            await self._reject(send, response, corr, 500, INTERNAL_ERROR_MESSAGE)
        finally:
            corr_id_var.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    self.on_oversize()
                    raise BodyTooLarge(limit)
            return msg

        return wrapped

    async def _reject(
        self,
        send: Send,
        response: _Response,
        corr: str,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        response.status = status
        resp = error_response(status, message, corr_id=corr, headers=headers)
        await resp({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}

"""The HTTP edge of both listeners: uvicorn's httptools protocol with the limits uvicorn lacks.

uvicorn (0.54) has no header-size limit for its httptools parser and no header-read timeout
at all: a client that dribbles header bytes, or sends 40 MB of headers that never end, holds
a connection and its buffer for ever (issue #11: 300 slowloris connections all still open
after 65 s; 10 unterminated 40 MB header blocks took the process from 117 MB to 565 MB).
This subclass adds, per connection:

- a header deadline: armed when the connection is made and when a request's first byte
  arrives, cleared when its headers are complete; when it fires the connection is closed
  (with a 408 if any byte of the request arrived). Dribbling bytes does not extend it.
- a header byte budget: bytes received while a request's headers are incomplete are counted;
  past the budget the connection is answered 431 and closed, and nothing more is buffered.
- a body deadline: armed when the headers are complete, cleared when the body is; when it
  fires the connection is closed (with a 408 if no response was started), so a body sent a
  byte at a time cannot hold a connection either.

The idle keep-alive timeout (after a response) and the connection cap are uvicorn's own
(``timeout_keep_alive``, ``limit_concurrency``); ``server.listener_config`` sets every limit
from Settings (``DIALBACK_HTTP_*``). docs/performance.md ("The HTTP edge") has the
measurements that chose this over granian and hypercorn (``python -m bench.edge``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dialback.web.envelope import CORR_HEADER, envelope, new_corr_id

log = logging.getLogger("dialback.edge")

HEADER_TOO_LARGE = 431
REQUEST_TIMEOUT = 408
LINGER_SECONDS = 1.0


def _refusal(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 error answer in the GES envelope that closes the connection."""
    corr = new_corr_id()
    body = envelope(status, message, corr)
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{CORR_HEADER}: {corr}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class EdgeHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a header byte budget."""

    # Set per listener by ``edge_protocol`` (a subclass each, so the two listeners may differ).
    max_header_bytes = 32 * 1024
    header_timeout = 10.0
    body_timeout = 10.0
    # Told the reason of each refusal (header_timeout, header_too_large, body_timeout).
    on_refusal: Callable[[str], None] = staticmethod(lambda _reason: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._request_bytes_seen = False
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection and start the deadline of its first request's headers."""
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadlines with the connection."""
        self._cancel_header_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, never more than the header budget while headers are incomplete."""
        if self._refused:
            return  # lingering after a refusal: read and drop
        if self._in_headers:
            self._request_bytes_seen = True
            if self._header_timer is None:
                self._arm_header_timer()
            room = self.max_header_bytes - self._header_bytes
            if len(data) > room:
                # The headers may end inside the budget with the body after them in this chunk.
                super().data_received(data[:room])
                if self.transport.is_closing():
                    return
                if self._in_headers:
                    self._refuse(
                        "header_too_large",
                        HEADER_TOO_LARGE,
                        "Request Header Fields Too Large",
                        f"request headers exceed the limit of {self.max_header_bytes} bytes",
                    )
                    return
                data = data[room:]
            else:
                self._header_bytes += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        """Headers in: stop the header deadline, then let uvicorn start the request."""
        self._in_headers = False
        self._cancel_header_timer()
        self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is read: whatever comes next is the next request's headers."""
        self._cancel_body_timer()
        super().on_message_complete()
        self._in_headers = True
        self._header_bytes = 0
        self._request_bytes_seen = False

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        message = f"request body not complete within {self.body_timeout:g} seconds"
        log.debug("edge closed a connection: %s", message)
        self.on_refusal("body_timeout")
        if self.cycle is not None and not self.cycle.response_started:
            # The app waits for the body; closing marks the cycle disconnected before it runs
            # again, so nothing of its own is written after this answer.
            self.transport.write(_refusal(REQUEST_TIMEOUT, "Request Timeout", message))
        self.transport.close()

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self._in_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request waits behind one still being answered: not the client's delay.
            self._arm_header_timer()
            return
        if self._request_bytes_seen:
            self._refuse(
                "header_timeout",
                REQUEST_TIMEOUT,
                "Request Timeout",
                f"request headers not complete within {self.header_timeout:g} seconds",
            )
        else:
            self.transport.close()  # silent since it opened: idle, not refused

    def _refuse(self, kind: str, status: int, reason: str, message: str) -> None:
        log.debug("edge refused a connection: %s", message)
        self.on_refusal(kind)
        self._cancel_header_timer()
        self._refused = True
        self.transport.write(_refusal(status, reason, message))
        # A lingering close: closing at once while the client is still sending makes the kernel
        # answer its next bytes with a reset, which destroys the answer before it is read. So
        # send FIN, drop what still arrives, and close after a short while.
        try:
            self.transport.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            self.transport.close()
            return
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def edge_protocol(
    max_header_bytes: int,
    header_timeout: float,
    body_timeout: float,
    on_refusal: Callable[[str], None] | None = None,
) -> type[EdgeHttpToolsProtocol]:
    """The protocol class of one listener, with its limits and who is told of a refusal."""
    limits: dict[str, Any] = {
        "max_header_bytes": max_header_bytes,
        "header_timeout": header_timeout,
        "body_timeout": body_timeout,
    }
    if on_refusal is not None:
        limits["on_refusal"] = staticmethod(on_refusal)
    return type("EdgeHttpToolsProtocol", (EdgeHttpToolsProtocol,), limits)

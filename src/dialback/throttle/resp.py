"""A lean RESP client: one multiplexed connection to Redis for the hot path."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def _pack(args: tuple[str | int, ...]) -> bytes:
    """One command in RESP."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else b"%d" % arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _RespProtocol(asyncio.Protocol):
    """Replies come back in the order the commands were written: each resolves the oldest
    waiting future."""

    def __init__(self, link: RespLink) -> None:
        self.link = link
        self.reader = hiredis.Reader()
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: Any = None
        self._out: list[bytes] = []

    def write(self, packed: bytes) -> None:
        """Queue a command; every command queued in this loop iteration goes in one write."""
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(packed)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None:
            self.transport.write(b"".join(out))

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            fut = self.pending.popleft()
            if fut.done():  # timed out: its connection is being aborted
                continue
            if isinstance(reply, hiredis.ReplyError):
                msg = str(reply)
                err = NoScriptError if msg.startswith("NOSCRIPT") else ResponseError
                fut.set_exception(err(msg))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.link._lost(self)
        while self.pending:
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_exception(RedisConnectionError(f"connection to Redis lost: {exc}"))


class RespLink:
    """One multiplexed connection to Redis for the hot path: every request writes its command
    at once and awaits its own reply, with no pool and no per-command client machinery (about
    a third of redis-py's CPU per command). Reconnects on the next command after a loss; a
    command unanswered after ``timeout`` seconds aborts the connection.

    Plain TCP only (``redis://``, with user, password and database); ``from_url`` returns
    None for TLS and Unix sockets, which then go through redis-py.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        timeout: float = 5.0,
        connect_timeout: float = 3.0,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password, self.db = username, password, db
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._proto: _RespProtocol | None = None
        self._connecting: asyncio.Future[_RespProtocol] | None = None
        self._closed = False

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float = 5.0, connect_timeout: float = 3.0
    ) -> RespLink | None:
        """A link for a ``redis://`` URL, or None when it needs TLS or a Unix socket."""
        kw = parse_url(url)
        if "connection_class" in kw or "path" in kw:
            return None
        return cls(
            kw.get("host", "localhost"),
            int(kw.get("port", 6379)),
            username=kw.get("username"),
            password=kw.get("password"),
            db=int(kw.get("db", 0)),
            timeout=timeout,
            connect_timeout=connect_timeout,
        )

    async def execute(self, *args: str | int) -> Any:
        """Send one command and return its reply (bytes, int, list or None)."""
        proto = self._proto
        if proto is None or proto.transport is None:
            proto = await self._connect()
        return await self._send(proto, _pack(args))

    async def _send(self, proto: _RespProtocol, packed: bytes) -> Any:
        assert proto.transport is not None
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        proto.pending.append(fut)
        proto.write(packed)
        timer = loop.call_later(self.timeout, self._expire, proto, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    def _expire(self, proto: _RespProtocol, fut: asyncio.Future[Any]) -> None:
        if not fut.done():
            fut.set_exception(RedisTimeoutError(f"no answer from Redis in {self.timeout} s"))
            if proto.transport is not None:
                proto.transport.abort()  # later replies could no longer be matched

    async def _connect(self) -> _RespProtocol:
        if self._closed:
            raise RedisConnectionError("the Redis link is closed")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _RespProtocol:
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _RespProtocol(self), self.host, self.port),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(
                f"cannot connect to Redis at {self.host}:{self.port}: {exc}"
            ) from exc
        if proto.transport is None:  # uvloop may report connection_made a step later
            proto.transport = transport
        try:
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                await self._send(proto, _pack(("AUTH", *auth)))
            if self.db:
                await self._send(proto, _pack(("SELECT", self.db)))
        except BaseException:
            if proto.transport is not None:
                proto.transport.abort()
            raise
        self._proto = proto
        return proto

    def _lost(self, proto: _RespProtocol) -> None:
        if self._proto is proto:
            self._proto = None

    async def close(self) -> None:
        """Close the connection; waiting commands fail."""
        self._closed = True
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()

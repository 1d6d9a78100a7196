"""Run both listeners (public 3005, internal 3050) and the runtime in one process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from dialback.app import create_internal_app, create_public_app
from dialback.container import Container
from dialback.settings import Settings
from dialback.web.edge import edge_protocol

log = logging.getLogger("dialback.server")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to dialback (two servers, one process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def dialback_command() -> str:
    """How to run ``dialback`` from here: bare when on PATH, else its script (``.venv/bin/dialback``)."""
    script = Path(sys.executable).parent / "dialback"
    on_path = shutil.which("dialback")
    if not script.exists() or (on_path and Path(on_path).resolve() == script.resolve()):
        return "dialback"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def _banner(rt: Container) -> None:
    s = rt.settings
    lines = [
        f"dialback listening: public API http://{s.host}:{s.public_port}/engagement/v3 , "
        f"internal http://{s.host}:{s.internal_port} (store: {'SQLite' if s.is_sqlite else 'PostgreSQL'})",
    ]
    if rt.demo:
        lines.append(f"demo tenant ready. API key (x-api-key): {rt.demo.api_key}")
        if s.demo_api_key is None:
            lines.append(
                "  (generated: a new key on every start, the previous one revoked; "
                "set DIALBACK_DEMO_API_KEY to keep one)"
            )
        if rt.demo.admin_token:
            lines.append(f"admin token (Authorization: Bearer): {rt.demo.admin_token}")
            lines.append(
                "  (generated: a new token on every start; set DIALBACK_ADMIN_TOKENS to keep one)"
            )
        host = "127.0.0.1" if s.host in ("", "0.0.0.0", "::") else s.host
        if rt.demo_admin:
            lines.append(
                f"Callback UI: http://{host}:{s.internal_port}/ui/login "
                f"user {rt.demo_admin.username} password {rt.demo_admin.password}"
            )
            if rt.demo_admin.generated:
                lines.append(
                    "  (generated: a new password on every start; "
                    "set DIALBACK_DEMO_ADMIN_PASSWORD to keep one)"
                )
        local = (host, s.public_port) == ("127.0.0.1", 3005)  # `dialback demo`'s default
        url = "" if local else f" --url http://{host}:{s.public_port}"
        lines.append(f"try it: {dialback_command()} demo{url} --api-key {rt.demo.api_key}")
    print("\n".join(lines), file=sys.stderr, flush=True)


def listener_config(
    app: Any, port: int, settings: Settings, on_refusal: Callable[[str], None] | None = None
) -> uvicorn.Config:
    """One listener: uvicorn with the edge protocol and every limit set explicitly."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        http=edge_protocol(
            settings.http_max_header_bytes,
            settings.http_header_timeout_seconds,
            settings.http_body_timeout_seconds,
            on_refusal,
        ),
        timeout_keep_alive=settings.http_keepalive_timeout_seconds,  # type: ignore[arg-type]
        limit_concurrency=settings.http_max_connections,
        backlog=settings.http_backlog,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=10,
    )


async def serve(settings: Settings) -> None:
    """Start the runtime and both HTTP servers; stop cleanly on SIGTERM/SIGINT."""
    rt = Container(settings)
    await rt.start()
    configs = [
        listener_config(
            create_public_app(rt),
            settings.public_port,
            settings,
            functools.partial(rt.events.http_edge_refused, "public"),
        ),
        listener_config(
            create_internal_app(rt),
            settings.internal_port,
            settings,
            functools.partial(rt.events.http_edge_refused, "internal"),
        ),
    ]
    servers = [_Server(c) for c in configs]
    loop = asyncio.get_running_loop()

    def _exit() -> None:
        for srv in servers:
            srv.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _exit)
    tasks = [asyncio.create_task(srv.serve()) for srv in servers]
    try:
        while not all(srv.started for srv in servers):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.05)
        if all(srv.started for srv in servers):
            _banner(rt)
            # What start-up built lives as long as the process: keep it out of the collector's
            # full passes, which otherwise stall the event loop for tens of milliseconds every
            # few seconds under load (they walked ~150,000 objects to free none).
            gc.freeze()
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        _exit()
        await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            if t.exception():
                raise t.exception()  # type: ignore[misc]
        if not all(srv.started for srv in servers):
            raise SystemExit("a listener failed to start (port in use?)")
    finally:
        await rt.stop()

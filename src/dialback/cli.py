"""The ``dialback`` command: serve, migrate, router-sim, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from dialback.observability.logging import setup_logging
from dialback.settings import Settings


def _run(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service."""
    from dialback.server import serve

    settings = Settings(demo=True) if args.demo else Settings()
    setup_logging(settings.log_level, max_len=settings.log_max_len, fmt=settings.log_format)
    _run(serve(settings))
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    """Apply pending schema migrations."""
    from dialback.db.engine import create_engine
    from dialback.db.migrations import migrate

    settings = Settings()
    setup_logging(settings.log_level)

    async def go() -> None:
        engine = create_engine(settings.database_url)
        try:
            applied = await migrate(engine)
            print(f"applied migrations: {applied or 'none (up to date)'}")
        finally:
            await engine.dispose()

    _run(go())
    return 0


def cmd_router_sim(args: argparse.Namespace) -> int:
    """Run the routing simulator against the routing Redis."""
    from dialback.container import redis_client
    from dialback.routing.simulator import RoutingSimulator
    from dialback.routing.transport import RedisTransport

    settings = Settings()
    setup_logging(settings.log_level)
    if settings.routing_redis_url is None:
        print("set DIALBACK_ROUTING_REDIS_URL to the routing Redis", file=sys.stderr)
        return 2

    async def go() -> None:
        transport = RedisTransport(
            redis_client(settings.routing_redis_url.get_secret_value()),  # type: ignore[union-attr]
            dispatch_stream=settings.routing_stream,
            outcome_stream=settings.outcome_stream,
            outcome_group=settings.outcome_group,
            routing_group=settings.routing_group,
            dedup_ttl=settings.dedup_ttl_seconds,
        )
        sim = RoutingSimulator(
            transport,
            agents=args.agents or settings.sim_agents,
            handle_seconds=args.handle_seconds
            if args.handle_seconds is not None
            else settings.sim_handle_seconds,
            ring_seconds=settings.sim_ring_seconds,
            answer_probability=(
                args.answer_probability
                if args.answer_probability is not None
                else settings.sim_answer_probability
            ),
            consumer=args.consumer,
        )
        try:
            await sim.run_forever()
        finally:
            await transport.close()

    with contextlib.suppress(KeyboardInterrupt):
        _run(go())
    return 0


def local_public_url() -> str:
    """The public API of a dialback started here: ``DIALBACK_HOST`` and ``DIALBACK_PUBLIC_PORT``."""
    host = os.environ.get("DIALBACK_HOST", "127.0.0.1")
    if host in ("", "0.0.0.0", "::"):  # a wildcard listener is reached on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{os.environ.get('DIALBACK_PUBLIC_PORT', '3005')}"


def cmd_demo(args: argparse.Namespace) -> int:
    """Book a callback on a running dialback and follow it to COMPLETED."""
    from dialback.demo import run_demo

    return run_demo(args.url or local_public_url(), args.api_key, args.phone, args.timeout)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dialback`` command."""
    p = argparse.ArgumentParser(prog="dialback", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the service (settings from DIALBACK_* variables)")
    s.add_argument("--demo", action="store_true", help="create the demo tenant, service and key")
    s.set_defaults(func=cmd_serve)
    m = sub.add_parser("migrate", help="apply pending database migrations")
    m.set_defaults(func=cmd_migrate)
    r = sub.add_parser("router-sim", help="run the routing simulator on the routing Redis")
    r.add_argument(
        "--agents", type=int, default=None, help="simulated agents (default: DIALBACK_SIM_AGENTS)"
    )
    r.add_argument(
        "--handle-seconds",
        type=float,
        default=None,
        help="mean handle time in seconds (default: DIALBACK_SIM_HANDLE_SECONDS)",
    )
    r.add_argument(
        "--answer-probability",
        type=float,
        default=None,
        help="share of customers who answer, 0-1 (default: DIALBACK_SIM_ANSWER_PROBABILITY)",
    )
    r.add_argument(
        "--consumer",
        default="router-sim-1",
        help="consumer name in the routing group (default: %(default)s)",
    )
    r.set_defaults(func=cmd_router_sim)
    d = sub.add_parser("demo", help="book a callback on a running dialback and follow it")
    d.add_argument(
        "--url",
        default=None,
        help="public API base URL (default: the local one, from DIALBACK_HOST and "
        "DIALBACK_PUBLIC_PORT: http://127.0.0.1:3005 when unset)",
    )
    d.add_argument(
        "--api-key",
        required=True,
        help="the tenant's x-api-key: the demo key `dialback serve --demo` printed",
    )
    d.add_argument(
        "--phone", default="+14155550123", help="number to call back (default: %(default)s)"
    )
    d.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for COMPLETED (default: %(default)s)",
    )
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dialback`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))

"""The ``dialback`` command: serve, migrate, router-sim, demo, users."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dialback.observability.logging import setup_logging
from dialback.settings import Settings

if TYPE_CHECKING:
    from dialback.audit.service import AuditLog
    from dialback.identity.roles import Principal
    from dialback.identity.users import User, UserAdmin, WithPassword


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


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return f"uid-{os.getuid()}"


def _read_password(args: argparse.Namespace) -> str | None:
    if not getattr(args, "password_stdin", False):
        return None
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def cmd_users(args: argparse.Namespace) -> int:
    """Manage the local users of the Callback UI in the configured database."""
    from dialback.audit.service import AuditLog
    from dialback.db.engine import create_engine
    from dialback.db.migrations import current_version, latest_version
    from dialback.identity.roles import Principal, Role
    from dialback.identity.users import UserAdmin
    from dialback.kit.errors import ApiError

    settings = Settings()
    setup_logging("warn", fmt="console")
    actor = Principal("cli", _os_user(), frozenset({Role.ADMINISTRATOR}))

    async def go() -> int:
        engine = create_engine(settings.database_url)
        users = UserAdmin(engine)
        audit = AuditLog(engine)
        try:
            have = await current_version(engine)
            if have < latest_version():
                print(
                    f"dialback users: the database schema is at version {have}, this dialback "
                    f"needs {latest_version()}: run `dialback migrate` first",
                    file=sys.stderr,
                )
                return 2
            return await _users_action(args, users, audit, actor)
        finally:
            await engine.dispose()

    try:
        password = _read_password(args)
        args.password = password
        return int(asyncio.run(go()))
    except ApiError as exc:
        print(f"dialback users: {exc.message}", file=sys.stderr)
        return 2


async def _users_action(
    args: argparse.Namespace, users: UserAdmin, audit: AuditLog, actor: Principal
) -> int:
    from dialback.identity.users import parse_roles, parse_tenants
    from dialback.kit.errors import BadRequest

    def describe(u: User) -> str:
        scope = "every tenant" if u.tenants is None else ",".join(sorted(u.tenants))
        roles = ",".join(sorted(r.value for r in u.roles))
        state = " (disabled)" if u.disabled else ""
        return f"{u.username}\t{roles}\t{scope}{state}"

    async def record(action: str, username: str, detail: dict[str, Any] | None = None) -> None:
        await audit.record(
            actor, action, object_type="user", object_id=username, address="cli", detail=detail
        )

    def shown_once(result: WithPassword) -> None:
        if result.generated_password is not None:
            print(
                f"password for {result.user.username} (shown once, keep it safe): "
                f"{result.generated_password}"
            )

    command = args.users_command
    if command == "list":
        for u in await users.list():
            print(describe(u))
        return 0
    if command == "add":
        roles = parse_roles(args.role)
        tenants = parse_tenants(args.tenant or None)
        result = await users.add(args.name, roles, tenants, password=args.password)
        await record(
            "users.create",
            result.user.username,
            {"roles": sorted(roles), "tenants": sorted(tenants) if tenants else None},
        )
        print(f"added {describe(result.user)}")
        shown_once(result)
        return 0
    if command == "remove":
        user = await users.remove(args.name)
        await record("users.delete", user.username)
        print(f"removed {user.username}")
        return 0
    if command == "reset-password":
        result = await users.reset_password(args.name, args.password)
        await record("users.password_reset", result.user.username)
        print(f"password of {result.user.username} reset; its sessions ended")
        shown_once(result)
        return 0
    if command == "set-roles":
        roles = parse_roles(args.role)
        if args.tenant and args.all_tenants:
            raise BadRequest("give --tenant or --all-tenants, not both")
        set_tenants = bool(args.tenant) or args.all_tenants
        tenants = None if args.all_tenants else parse_tenants(args.tenant or None)
        user = await users.update(args.name, roles=roles, tenants=tenants, set_tenants=set_tenants)
        await record(
            "users.update",
            user.username,
            {"roles": sorted(roles), "tenants": sorted(tenants) if tenants else None},
        )
        print(f"set {describe(user)}")
        return 0
    disabled = command == "disable"
    user = await users.update(args.name, disabled=disabled)
    await record("users.disable" if disabled else "users.enable", user.username)
    print(f"{'disabled' if disabled else 'enabled'} {user.username}")
    return 0


def _users_parser(sub: argparse._SubParsersAction) -> None:
    from dialback.identity.roles import Role

    roles = ", ".join(r.value for r in Role)
    u = sub.add_parser(
        "users",
        help="manage the local users of the Callback UI (in DIALBACK_DATABASE_URL)",
        description="Local users of the Callback UI. Exit code 2 on a refused request.",
    )
    u.set_defaults(func=cmd_users)
    us = u.add_subparsers(dest="users_command", required=True)

    def name(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", help="the user name (stored lower-cased)")

    def password_stdin(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of standard input "
            "(otherwise one is generated and printed once)",
        )

    def role_and_tenants(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--role", action="append", required=True, help=f"a role ({roles}); repeatable"
        )
        p.add_argument(
            "--tenant",
            action="append",
            default=[],
            help="a tenant the user may see; repeatable (none: every tenant)",
        )

    a = us.add_parser("add", help="add a user")
    name(a)
    role_and_tenants(a)
    password_stdin(a)
    r = us.add_parser("remove", help="remove a user (its sessions end)")
    name(r)
    rp = us.add_parser("reset-password", help="set a new password (its sessions end)")
    name(rp)
    password_stdin(rp)
    sr = us.add_parser("set-roles", help="replace a user's roles (and tenant scope)")
    name(sr)
    role_and_tenants(sr)
    sr.add_argument("--all-tenants", action="store_true", help="let the user see every tenant")
    d = us.add_parser("disable", help="disable a user (its sessions end)")
    name(d)
    e = us.add_parser("enable", help="enable a disabled user")
    name(e)
    us.add_parser("list", help="list the users: name, roles, tenants")


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
    _users_parser(sub)
    h = sub.add_parser(
        "hash-token",
        help="print the sha256:<hex> form of an admin token read from stdin "
        "(for DIALBACK_ADMIN_TOKENS, so the configuration holds no usable token)",
    )
    h.set_defaults(func=cmd_hash_token)
    return p


def cmd_hash_token(_args: argparse.Namespace) -> int:
    """Print the ``sha256:<hex>`` form of an admin token read from standard input."""
    from dialback.identity.admin_tokens import token_digest

    token = sys.stdin.readline().rstrip("\r\n")
    if len(token) < 16:
        print("an admin token must be at least 16 characters", file=sys.stderr)
        return 2
    print("sha256:" + token_digest(token).hex())
    return 0


def _settings_problems(exc: ValidationError) -> str:
    """A refused configuration, one line per setting, as DIALBACK_* variables (never the
    value: it may be a secret)."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        name = f"DIALBACK_{field.upper()}" if field != "settings" else "settings"
        lines.append(f"  {name}: {err['msg']}")
    return "dialback: the configuration is refused:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dialback`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        # A setting that does not pass: say which and why, with exit code 2, not a traceback.
        if exc.title != Settings.__name__:
            raise
        print(_settings_problems(exc), file=sys.stderr)
        return 2

"""The `dialback` commands as an operator runs them: migrate, serve, router-sim, demo."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from testbed.servers import free_port

from dialback.cli import build_parser
from dialback.db.migrations import MIGRATIONS
from dialback.identity.admin_tokens import AdminTokens
from tests.support.process import DialbackProcess, ui_sign_in

UI_LINE = re.compile(r"Callback UI: (\S+) user (\S+) password (\S+)")


def _env(**kw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
    env.update(kw)
    return env


def test_migrate_is_idempotent(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pg_server.psql("CREATE DATABASE cli_migrate")
    try:
        env = _env(DIALBACK_DATABASE_URL=pg_server.url("cli_migrate"))
        first = subprocess.run(
            [sys.executable, "-m", "dialback", "migrate"], env=env, capture_output=True, text=True
        )
        assert first.returncode == 0, first.stderr
        assert f"applied migrations: {[m.version for m in MIGRATIONS]}" in first.stdout
        again = subprocess.run(
            [sys.executable, "-m", "dialback", "migrate"], env=env, capture_output=True, text=True
        )
        assert again.returncode == 0 and "up to date" in again.stdout
    finally:
        pg_server.psql("DROP DATABASE cli_migrate WITH (FORCE)")


def test_serve_refuses_an_unmigrated_database_when_told_not_to_migrate(
    pg_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    pg_server.psql("CREATE DATABASE cli_nomigrate")
    try:
        proc = DialbackProcess(
            {
                "DIALBACK_DATABASE_URL": pg_server.url("cli_nomigrate"),
                "DIALBACK_MIGRATE_ON_START": "false",
            },
            tmp_path / "serve.log",
        )
        try:
            proc.start(timeout=15)
            raise AssertionError("dialback started on an unmigrated database")
        except RuntimeError as exc:
            assert "run `dialback migrate`" in str(exc)
    finally:
        pg_server.psql("DROP DATABASE cli_nomigrate WITH (FORCE)")


def test_router_sim_process_completes_callbacks_booked_by_demo(
    tmp_path: Path, pg_url: str, redis_url: str, routing_redis_url: str
) -> None:
    key = "cli-demo-key-0123456789abcdef"
    env = {
        "DIALBACK_DATABASE_URL": pg_url,
        "DIALBACK_REDIS_URL": redis_url,
        "DIALBACK_ROUTING_REDIS_URL": routing_redis_url,
        "DIALBACK_DEMO": "true",
        "DIALBACK_DEMO_API_KEY": key,
    }
    server = DialbackProcess(env, tmp_path / "serve.log").start()
    sim_log = (tmp_path / "sim.log").open("wb")
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dialback",
            "router-sim",
            "--agents",
            "2",
            "--handle-seconds",
            "1.0",  # PROCESSING outlasts the demo's 0.2 s polling, so it is always seen
            "--answer-probability",
            "1",
        ],
        env=_env(DIALBACK_ROUTING_REDIS_URL=routing_redis_url),
        stdout=sim_log,
        stderr=subprocess.STDOUT,
    )
    try:
        demo = subprocess.run(
            [
                sys.executable,
                "-m",
                "dialback",
                "demo",
                "--url",
                server.public_url,
                "--api-key",
                key,
                "--timeout",
                "30",
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        lines = demo.stdout.splitlines()
        assert lines[0].startswith("booked callback ")
        assert lines[-1].strip() == "COMPLETED (answered)"
        assert any(line.strip() == "PROCESSING" for line in lines)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        sim_log.close()
        server.stop()


def test_every_option_of_every_command_has_help() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {'/'.join(action.option_strings)}"
        for name, sub in subparsers.choices.items()
        for action in sub._actions
        if action.option_strings and not action.help
    ]
    assert missing == []


def _banner(proc: DialbackProcess, fragment: str, timeout: float = 10) -> str:
    """The server's log once its start-up banner (which holds ``fragment``) is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = proc.log_path.read_text()
        if fragment in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"no {fragment!r} in the banner: {proc.log_path.read_text()[-2000:]}")


def _demo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dialback", "demo", *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_demo_on_a_server_that_is_down_says_so_in_one_line() -> None:
    port = str(free_port())
    out = _demo("--api-key", "anything", "--timeout", "5", DIALBACK_PUBLIC_PORT=port)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert f"cannot reach http://127.0.0.1:{port}/engagement/v3/callbacks/create" in out.stderr
    assert "Connection refused" in out.stderr


def test_generated_demo_key_rotates_and_the_banner_says_how_to_use_it(tmp_path: Path) -> None:
    env = {
        "DIALBACK_DEMO": "true",
        "DIALBACK_SIM_HANDLE_SECONDS": "0.3",
        "DIALBACK_SIM_ANSWER_PROBABILITY": "1",
    }
    first = DialbackProcess(env, tmp_path / "first.log", cwd=tmp_path).start()
    try:
        first_banner = _banner(first, "try it:")
        old_key = re.search(r"API key \(x-api-key\): (\S+)", first_banner)
        old_admin = UI_LINE.search(first_banner)
        assert old_admin, first_banner
        assert old_admin.group(1) == f"{first.internal_url}/ui/login"
        assert old_admin.group(2) == "admin"
        assert ui_sign_in(first.internal_url, "admin", old_admin.group(3)).status_code == 303
    finally:
        first.stop()
    assert old_key
    second = DialbackProcess(env, tmp_path / "second.log", cwd=tmp_path).start()
    try:
        banner = _banner(second, "try it:")
        assert "a new key on every start, the previous one revoked" in banner
        assert "set DIALBACK_DEMO_API_KEY to keep one" in banner
        assert "set DIALBACK_ADMIN_TOKENS to keep one" in banner
        assert "set DIALBACK_DEMO_ADMIN_PASSWORD to keep one" in banner
        admin = UI_LINE.search(banner)
        assert admin and admin.group(3) != old_admin.group(3)
        assert ui_sign_in(second.internal_url, "admin", old_admin.group(3)).status_code == 401
        signed = ui_sign_in(second.internal_url, "admin", admin.group(3))
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/"
        new_key = re.search(r"API key \(x-api-key\): (\S+)", banner)
        assert new_key and new_key.group(1) != old_key.group(1)

        # The previous start's key is revoked: the demo explains instead of a traceback, and
        # finds the server through DIALBACK_PUBLIC_PORT without --url.
        refused = _demo("--api-key", old_key.group(1), DIALBACK_PUBLIC_PORT=str(second.public_port))
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert refused.stderr.strip().splitlines() == [
            "dialback demo: the API key was refused (invalid x-api-key): use the key `dialback "
            "serve` printed at its last start (a generated demo key changes on every restart)"
        ]

        # The command the banner prints works as printed, from where the server was started.
        command = re.search(r"try it: (.+)", banner)
        assert command
        argv = shlex.split(command.group(1))
        assert argv[1:3] == ["demo", "--url"] and argv[-1] == new_key.group(1)
        ran = subprocess.run(
            argv, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.splitlines()[-1].strip() == "COMPLETED (answered)"
    finally:
        second.stop()


def test_a_refused_setting_is_one_clear_line_per_setting_never_its_value(tmp_path: Path) -> None:
    secret = "a-token-with-an-unknown-role-0001"
    ran = subprocess.run(
        [sys.executable, "-m", "dialback", "serve"],
        env=_env(
            DIALBACK_ADMIN_TOKENS=f"ops:boss:{secret}",
            DIALBACK_TRUSTED_PROXIES="not-an-address",
            DIALBACK_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/never.db",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2
    assert "Traceback" not in ran.stderr
    assert (
        "DIALBACK_ADMIN_TOKENS: Value error, admin token 'ops': unknown role 'boss'" in ran.stderr
    )
    assert "DIALBACK_TRUSTED_PROXIES: Value error, not an address or CIDR" in ran.stderr
    assert secret not in ran.stderr + ran.stdout
    assert not (tmp_path / "never.db").exists()


def test_hash_token_prints_the_digest_the_settings_accept() -> None:
    token = "an-admin-token-to-keep-out-of-config"
    ran = subprocess.run(
        [sys.executable, "-m", "dialback", "hash-token"],
        input=token + "\n",
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    digest = ran.stdout.strip()
    assert digest == "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    tokens = AdminTokens([f"ci:supervisor:{digest}"])
    who = tokens.match(token)
    assert who is not None and who.actor == "token:ci"
    short = subprocess.run(
        [sys.executable, "-m", "dialback", "hash-token"],
        input="short\n",
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert short.returncode == 2 and "at least 16 characters" in short.stderr

"""`dialback users` as an operator runs it, against a SQLite file: add, list, reset-password,
set-roles, disable/enable, remove, and clear refusals (exit code 2)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dialback.db.engine import create_engine
from dialback.identity.users import BadCredentials, UserAdmin


def _users(db: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
    env["DIALBACK_DATABASE_URL"] = db
    return subprocess.run(
        [sys.executable, "-m", "dialback", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _signs_in(db: str, username: str, password: str) -> bool:
    async def go() -> bool:
        engine = create_engine(db)
        try:
            await UserAdmin(engine).authenticate(username, password)
            return True
        except BadCredentials:
            return False
        finally:
            await engine.dispose()

    return asyncio.run(go())


REFUSALS = [
    (("add", "carol", "--role", "boss"), None, "unknown role 'boss'"),
    (("remove", "nobody"), None, "no user named 'nobody'"),
    (("add", "carol", "--role", "monitor", "--password-stdin"), "short\n", "at least 12"),
]


@pytest.mark.slow
def test_users_cli(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path}/dialback.db"
    unmigrated = _users(db, "users", "list")
    assert unmigrated.returncode == 2 and "run `dialback migrate` first" in unmigrated.stderr
    assert _users(db, "migrate").returncode == 0

    added = _users(db, "users", "add", "Alice", "--role", "supervisor", "--tenant", "acme")
    assert added.returncode == 0, added.stderr
    assert "added alice\tsupervisor\tacme" in added.stdout
    shown = re.search(r"password for alice \(shown once, keep it safe\): (\S+)", added.stdout)
    assert shown and len(shown.group(1)) >= 20
    assert _signs_in(db, "alice", shown.group(1))

    piped = _users(
        db,
        "users",
        "add",
        "bob",
        "--role",
        "monitor",
        "--role",
        "developer",
        "--password-stdin",
        stdin="bob's long password\n",
    )
    assert piped.returncode == 0, piped.stderr
    assert "password for" not in piped.stdout  # given, so not printed
    assert _signs_in(db, "bob", "bob's long password")

    listed = _users(db, "users", "list")
    assert listed.stdout.splitlines() == [
        "alice\tsupervisor\tacme",
        "bob\tdeveloper,monitor\tevery tenant",
    ]

    reset = _users(db, "users", "reset-password", "alice")
    new = re.search(r"password for alice \(shown once, keep it safe\): (\S+)", reset.stdout)
    assert reset.returncode == 0 and new and new.group(1) != shown.group(1)
    assert not _signs_in(db, "alice", shown.group(1)) and _signs_in(db, "alice", new.group(1))

    roles = _users(db, "users", "set-roles", "alice", "--role", "administrator", "--all-tenants")
    assert roles.returncode == 0 and "set alice\tadministrator\tevery tenant" in roles.stdout
    assert _users(db, "users", "disable", "bob").returncode == 0
    assert not _signs_in(db, "bob", "bob's long password")
    assert "bob\tdeveloper,monitor\tevery tenant (disabled)" in _users(db, "users", "list").stdout
    assert _users(db, "users", "enable", "bob").returncode == 0
    assert _users(db, "users", "remove", "bob").returncode == 0
    assert _users(db, "users", "list").stdout.splitlines() == ["alice\tadministrator\tevery tenant"]

    for args, stdin, message in REFUSALS:
        out = _users(db, "users", *args, stdin=stdin)
        assert out.returncode == 2, out.stdout + out.stderr
        assert message in out.stderr and "Traceback" not in out.stderr

"""The `dialback` commands as an operator runs them: migrate, serve, router-sim, demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dialback.db.migrations import MIGRATIONS
from tests.support.process import DialbackProcess


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

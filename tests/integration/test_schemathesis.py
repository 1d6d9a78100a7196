"""Schemathesis fuzzes the OpenAPI documents of both listeners against a real ``dialback serve``:
no generated request, valid or not, with or without credentials, may get a 5xx."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from testbed.servers import free_port

from dialback.app import create_internal_app, create_public_app
from dialback.db.schema import callbacks
from tests.support.stack import SettingsFactory, Stack, started_stack

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
PHONE = "+14155550123"
ADMIN_TOKEN = "fuzz-admin-token"


@dataclass
class Server:
    url: str
    internal_url: str
    log: Path


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: no proxies (traffic stays on 127.0.0.1)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().endswith("_proxy") and not k.startswith("DIALBACK_")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


@pytest.fixture
async def passive(settings_with: SettingsFactory) -> AsyncIterator[Stack]:
    """A runtime on the test databases with no monitor or simulator (the server has those)."""
    settings = settings_with(
        simulator="off",
        monitor_enabled=False,
    )
    async with started_stack(settings) as stack:
        yield stack


@pytest.fixture
async def server(
    pg_url: str, redis_url: str, routing_redis_url: str, tmp_path: Path, passive: Stack
) -> AsyncIterator[Server]:
    """``python -m dialback serve`` on free loopback ports, stopped by PID afterwards."""
    public, internal = free_port(), free_port()
    log = tmp_path / "server.log"
    env = _clean_env(
        DIALBACK_HOST="127.0.0.1",
        DIALBACK_PUBLIC_PORT=str(public),
        DIALBACK_INTERNAL_PORT=str(internal),
        DIALBACK_DATABASE_URL=pg_url,
        DIALBACK_REDIS_URL=redis_url,
        DIALBACK_ROUTING_REDIS_URL=routing_redis_url,
        DIALBACK_SIMULATOR="on",
        DIALBACK_SIM_HANDLE_SECONDS="0.05",
        DIALBACK_SIM_RING_SECONDS="0.01",
        DIALBACK_MONITOR_POLL_SECONDS="0.1",
        DIALBACK_API_KEY_CACHE_SECONDS="0",
        DIALBACK_LOG_LEVEL="warn",
        DIALBACK_ADMIN_TOKENS=ADMIN_TOKEN,
    )
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dialback", "serve", env=env, stdout=out, stderr=out
        )
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            for _ in range(300):
                if proc.returncode is not None:
                    raise AssertionError(f"dialback serve exited: {log.read_text()[-3000:]}")
                try:
                    r = await client.get(f"http://127.0.0.1:{internal}/health/ready")
                    if r.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"dialback serve did not get ready: {log.read_text()[-3000:]}")
        yield Server(f"http://127.0.0.1:{public}", f"http://127.0.0.1:{internal}", log)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def public_schema(stack: Stack) -> dict[str, Any]:
    """The public API's OpenAPI document, with examples naming the test tenant's service.

    Examples only steer some generated requests to a real service and a dialable number, so
    that the fuzzing also reaches the booking code and the store instead of stopping at
    "no service named ..."; the schema itself (types, constraints, responses) is untouched.
    """
    doc = copy.deepcopy(create_public_app(stack.rt).openapi())
    props = doc["components"]["schemas"]["CreateCallback"]["properties"]
    props["serviceName"]["examples"] = ["sales"]
    props["phoneNumber"]["examples"] = [PHONE]
    for path_item in doc["paths"].values():
        for op in path_item.values():
            for param in op.get("parameters", []):
                if param["name"] in ("service_name", "queue_name"):
                    param["example"] = "sales"
                elif param["name"] == "virtual-queues":
                    param["example"] = "sales,other"
    return doc


def _write_schema(workdir: Path, schema: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "openapi.json"
    path.write_text(json.dumps(schema))
    return path


async def run_schemathesis(
    schema: dict[str, Any],
    base_url: str,
    workdir: Path,
    headers: dict[str, str],
    label: str,
    max_examples: int,
    phases: str = "examples,coverage,fuzzing",
    checks: str = CHECKS,
    extra: tuple[str, ...] = (),
) -> str:
    """Run the schemathesis CLI; return its output, failing the test on any check failure."""
    schema_path = _write_schema(workdir, schema)
    args = [
        "run",
        str(schema_path),
        "--url",
        base_url,
        "--checks",
        checks,
        "--phases",
        phases,
        "--mode",
        "all",
        "--max-examples",
        str(max_examples),
        "--seed",
        "20240601",
        # One worker: hypothesis parses lambda sources with ast, which is not thread-safe on
        # CPython 3.11 ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-dir",
        str(workdir / "report"),
        *extra,
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        *args,
        cwd=workdir,
        env=_clean_env(NO_COLOR="1", SCHEMATHESIS_HOOKS=""),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"schemathesis ({label}) found failures:\n{text[-12000:]}"
    summary = re.search(r"(\d+) generated, (\d+) passed", text)
    assert summary and int(summary[1]) == int(summary[2]) > 0, text[-3000:]
    print(f"schemathesis ({label}): {summary[0]}")
    return text


@pytest.mark.slow
async def test_public_api_has_no_server_errors_under_schemathesis(
    passive: Stack, server: Server, tmp_path: Path
) -> None:
    key = await passive.tenant("acme", service="sales")
    schema = public_schema(passive)
    assert len(schema["paths"]) >= 7

    await run_schemathesis(
        schema, server.url, tmp_path / "keyed", {"x-api-key": key}, "key", max_examples=100
    )
    # The generated requests got past authentication and validation into the store.
    async with passive.rt.engine.connect() as conn:
        booked = (await conn.execute(sa.select(sa.func.count()).select_from(callbacks))).scalar()
    assert booked and booked > 0

    # Without a key (and with a wrong one) every operation must answer a 4xx envelope.
    await run_schemathesis(schema, server.url, tmp_path / "anon", {}, "no key", max_examples=20)
    await run_schemathesis(
        schema,
        server.url,
        tmp_path / "wrong",
        {"x-api-key": "nope"},
        "bad key",
        max_examples=20,
        phases="examples,fuzzing",
    )

    assert_clean_log(server)


def assert_clean_log(server: Server) -> None:
    """The store's safety net answers 400 but logs "unhandled error": none may have been needed."""
    log = server.log.read_text()
    assert "dialback listening" in log, log[-3000:]
    assert "unhandled error" not in log and "Traceback" not in log, log[-5000:]


@pytest.mark.slow
async def test_internal_api_has_no_server_errors_under_schemathesis(
    passive: Stack, server: Server, tmp_path: Path
) -> None:
    await passive.tenant("acme", service="sales")
    schema = create_internal_app(passive.rt).openapi()
    # Only the 5xx check: the admin routes' documentation is not what this test is about. The
    # probes are left out: /health/ready rightly answers 503 when a dependency is down.
    only_admin = ("--exclude-path-regex", "^/health")
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    await run_schemathesis(
        schema,
        server.internal_url,
        tmp_path / "admin",
        auth,
        "admin",
        max_examples=25,
        checks="not_a_server_error",
        extra=only_admin,
    )
    await run_schemathesis(
        schema,
        server.internal_url,
        tmp_path / "anon-admin",
        {},
        "admin without token",
        max_examples=10,
        phases="examples,fuzzing",
        checks="not_a_server_error",
        extra=only_admin,
    )
    assert_clean_log(server)

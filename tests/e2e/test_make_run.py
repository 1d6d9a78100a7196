"""The README's promise: `dialback serve` on the embedded default, and its examples work as
written (immediate, `dialback demo`, scheduled: on whatever day the suite runs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.support.process import DialbackProcess, ui_sign_in

ROOT = Path(__file__).resolve().parents[2]


def readme_example(name: str) -> str:
    """The shell block marked ``<!-- readme-example: NAME -->`` in the README."""
    text = (ROOT / "README.md").read_text()
    block = re.search(
        rf"<!-- readme-example: {name} -->\s*```sh\n(.*?)```\s*<!-- readme-example: end -->",
        text,
        re.S,
    )
    assert block, f"README example block {name!r} missing"
    return block.group(1)


def _run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Where the suite's virtualenv is not the clone's .venv, `.venv/bin/` means the suite's one.
    if not (ROOT / ".venv" / "bin" / "dialback").exists():
        script = script.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}, **env},
    )


def test_embedded_default_serves_the_readme_example(tmp_path: Path) -> None:
    key = "readme-demo-key-0123456789"
    proc = DialbackProcess(
        {
            "DIALBACK_DEMO": "true",
            "DIALBACK_DEMO_API_KEY": key,
            "DIALBACK_DEMO_ADMIN_PASSWORD": "pinned demo admin password",
            "DIALBACK_SIM_HANDLE_SECONDS": "0.3",
            "DIALBACK_SIM_ANSWER_PROBABILITY": "1",
        },
        tmp_path / "serve.log",
        cwd=tmp_path,  # the embedded default keeps its SQLite file under ./var
    ).start()
    try:
        script = readme_example("immediate")
        assert "API=http://127.0.0.1:3005" in script
        script = script.replace("API=http://127.0.0.1:3005", f"API={proc.public_url}")
        script = re.sub(r"KEY=<[^>]*>", f"KEY={key}", script)
        out = _run(script)
        assert out.returncode == 0, out.stderr
        booked = re.search(r"booked ([0-9a-f-]{36})", out.stdout)
        assert booked, out.stdout
        last = json.loads(out.stdout.strip().splitlines()[-1])
        assert last["status"]["code"] == 200 and last["data"]["id"] == booked.group(1)

        deadline = time.monotonic() + 30
        state = None
        while time.monotonic() < deadline:
            r = httpx.post(
                f"{proc.public_url}/engagement/v3/callbacks/retrieve",
                json={"id": booked.group(1)},
                headers={"x-api-key": key},
            )
            state = r.json()["data"]["callbackState"]
            if state == "COMPLETED":
                break
            time.sleep(0.2)
        assert state == "COMPLETED"

        # The README's `dialback demo` line, verbatim; the port is the one this server listens on.
        shell_vars = f"API={proc.public_url}\nKEY={key}\n"
        demo = _run(shell_vars + readme_example("demo"), DIALBACK_PUBLIC_PORT=str(proc.public_port))
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert demo.stdout.splitlines()[-1].strip() == "COMPLETED (answered)"

        # The scheduled example books tomorrow 14:30 UTC, whatever today is.
        days = {(datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT14:30:00.000Z")}
        scheduled = _run(shell_vars + readme_example("scheduled"))
        assert scheduled.returncode == 0, scheduled.stderr
        created = json.loads(scheduled.stdout.strip().splitlines()[-1])
        assert created["status"]["code"] == 200, created
        days.add((datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT14:30:00.000Z"))
        r = httpx.post(
            f"{proc.public_url}/engagement/v3/callbacks/retrieve",
            json={"id": created["data"]["id"]},
            headers={"x-api-key": key},
        )
        booked_cb = r.json()["data"]
        assert booked_cb["callbackState"] == "SCHEDULED"
        assert booked_cb["desiredTime"] in days  # `days`: the run may cross midnight
        assert (tmp_path / "var" / "dialback.db").exists()
        banner = (tmp_path / "serve.log").read_text()
        assert f"API key (x-api-key): {key}" in banner
        # The demo administrator, with the pinned password, signs in to the Callback UI.
        assert (
            f"Callback UI: {proc.internal_url}/ui/login user admin password "
            "pinned demo admin password"
        ) in banner
        assert "a new password on every start" not in banner
        signed = ui_sign_in(proc.internal_url, "admin", "pinned demo admin password")
        assert signed.status_code == 303 and "dialback_session=" in signed.headers["set-cookie"]
    finally:
        proc.stop()

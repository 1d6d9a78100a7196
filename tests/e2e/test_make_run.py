"""The README's promise: `dialback serve` on the embedded default, and its curl example works."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.process import DialbackProcess

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- readme-example: begin -->\s*```sh\n(.*?)```", text, re.S)
    assert block, "README example block missing"
    return block.group(1)


def test_embedded_default_serves_the_readme_example(tmp_path: Path) -> None:
    key = "readme-demo-key-0123456789"
    proc = DialbackProcess(
        {
            "DIALBACK_DEMO": "true",
            "DIALBACK_DEMO_API_KEY": key,
            "DIALBACK_SIM_HANDLE_SECONDS": "0.3",
        },
        tmp_path / "serve.log",
        cwd=tmp_path,  # the embedded default keeps its SQLite file under ./var
    ).start()
    try:
        script = readme_example().replace("API=http://127.0.0.1:3005", f"API={proc.public_url}")
        script = re.sub(r"KEY=<[^>]*>", f"KEY={key}", script)
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=30
        )
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
        assert (tmp_path / "var" / "dialback.db").exists()
        banner = (tmp_path / "serve.log").read_text()
        assert f"API key (x-api-key): {key}" in banner
    finally:
        proc.stop()

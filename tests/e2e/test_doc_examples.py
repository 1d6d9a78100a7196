"""The shell examples of the README and the docs work when copied as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.process import DialbackProcess

ROOT = Path(__file__).resolve().parents[2]
# Every document with shell examples (the operator guide's also run against a real dialback).
DOCS = [
    "README.md",
    *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md") if "```sh" in p.read_text()),
]
# Variables a reader's shell has without the document defining them.
ENVIRONMENT = {"PATH", "HOME"}


def shell_blocks(doc: str) -> list[str]:
    """The ```sh blocks of a document, in order."""
    return re.findall(r"```sh\n(.*?)```", (ROOT / doc).read_text(), re.S)


def _assigned(line: str) -> list[str]:
    """Variables a line of shell assigns (``VAR=...`` or ``export VAR=...``)."""
    return re.findall(r"(?:^|&&|;|\bexport)\s*([A-Za-z_][A-Za-z0-9_]*)=", line)


def _without_single_quotes(line: str) -> str:
    return re.sub(r"'[^']*'", "''", line)


@pytest.mark.parametrize("doc", DOCS)
def test_shell_examples_are_well_formed(doc: str) -> None:
    blocks = shell_blocks(doc)
    assert blocks, f"{doc} has no shell examples"
    assigned: set[str] = set()
    problems = []
    for block in blocks:
        for line in block.splitlines():
            code = _without_single_quotes(line.split(" #")[0])
            # curl 7.88 refuses a URL without a host (`curl :3050/...`).
            if re.search(r"(^|[\s\"])(:\d+)[/\s\"]", code) and "curl" in code:
                problems.append(f"host-less URL: {line.strip()}")
            for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", code):
                if var not in assigned | ENVIRONMENT and var not in _assigned(code):
                    problems.append(f"${var} used before it is defined: {line.strip()}")
            # `make run` puts no `dialback` on PATH: a bare one needs the document to set PATH.
            if re.search(r"(^|&&|;|\|)\s*dialback\s", code) and "PATH" not in assigned:
                problems.append(f"`dialback` is not on PATH here: {line.strip()}")
            assigned.update(_assigned(code))
    text = (ROOT / doc).read_text()
    problems += [f"host-less URL in prose: {m}" for m in re.findall(r"`[^`]*\s:\d+/[^`]*`", text)]
    assert problems == []


def _json_values(text: str) -> list[Any]:
    """Every JSON value printed one after the other (curl -s prints no newline between them)."""
    decoder, values, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        value, i = decoder.raw_decode(text, i)
        values.append(value)
    return values


def test_operator_guide_examples_run_against_a_started_dialback(tmp_path: Path) -> None:
    token = "guide-admin-token-0123456789"
    proc = DialbackProcess({"DIALBACK_ADMIN_TOKENS": token}, tmp_path / "serve.log", cwd=tmp_path)
    proc.start()
    try:
        script = "\n".join(shell_blocks("docs/operator-guide.md"))
        assert "INTERNAL=http://127.0.0.1:3050" in script and "ADMIN_TOKEN=<" in script
        script = script.replace("INTERNAL=http://127.0.0.1:3050", f"INTERNAL={proc.internal_url}")
        script = re.sub(r"ADMIN_TOKEN=<[^>\n]*>", f"ADMIN_TOKEN={token}", script)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        tenant, service, key, ready, service_again, queued, logging = _json_values(out.stdout)
        assert tenant["status"]["code"] == 201, tenant
        assert service["status"]["code"] == 201, service
        assert service["data"]["warnings"] == [], service["data"]["warnings"]
        assert key["status"]["code"] == 201 and key["data"]["key"], key
        assert ready["status"] == "ready" and "dependencies" in ready, ready
        for answer in (service_again, queued, logging):
            assert answer["status"]["code"] == 200, answer
        assert service_again["data"]["config"]["validation"]["defaultCountry"] == "GB"
    finally:
        proc.stop()

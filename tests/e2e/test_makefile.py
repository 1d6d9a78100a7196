"""`make run` installs the runtime only, development targets add the dev tools, and a second
run of either installs nothing (stamp files). Checked with `make -n` on a throwaway VENV."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIP = "pip install --quiet --disable-pip-version-check"


def _plan(target: str, venv: Path) -> str:
    """The commands ``make`` would run for ``target`` (dry run)."""
    out = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _installs(plan: str) -> list[str]:
    return [line.split(PIP, 1)[1].strip() for line in plan.splitlines() if PIP in line]


def test_run_installs_the_runtime_and_test_adds_the_dev_tools_once(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert _installs(_plan("run", venv)) == ["-e ."]
    for target in ("test", "test-unit", "lint", "venv"):
        assert _installs(_plan(target, venv)) == ["-e '.[dev]'"], target

    # What `make run` leaves: the runtime stamp. `run` again installs nothing; `test` adds the
    # dev tools.
    digest = hashlib.sha1((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv.mkdir()
    (venv / f".installed-run-{digest}").touch()
    assert _installs(_plan("run", venv)) == []
    assert _installs(_plan("test", venv)) == ["-e '.[dev]'"]

    # What `make test` leaves: both stamps. Nothing is installed again by any target.
    (venv / f".installed-dev-{digest}").touch()
    for target in ("run", "test", "test-unit"):
        assert _installs(_plan(target, venv)) == [], target

    # A stamp of another pyproject.toml counts for nothing.
    (venv / f".installed-dev-{digest}").rename(venv / ".installed-dev-000000000000")
    assert _installs(_plan("test", venv)) == ["-e '.[dev]'"]

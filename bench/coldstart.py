"""Cold start: ``make run`` on a fresh clone until the readiness probe answers.

The repository's committed HEAD is cloned into a temporary directory (no virtualenv there; pip's
cache is whatever this machine has, normally warm), ``make run`` is started on free ports in a
process group of its own, and the clock stops at the first 200 from ``/health/ready``. The
group is then stopped by its id and the clone removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from testbed.servers import free_port

from bench.stack import ROOT


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _installed_stamp(clone: Path) -> Path | None:
    """The install stamp of this checkout's virtualenv for the clone's pyproject.toml, when it
    has one (the virtualenv holds what the clone's ``make run`` would install)."""
    digest = hashlib.sha1((clone / "pyproject.toml").read_bytes()).hexdigest()[:12]
    stamp = ROOT / ".venv" / f".installed-run-{digest}"
    return stamp if stamp.exists() else None


def measure(timeout: float = 300.0, *, reuse_venv: bool = False) -> dict[str, float]:
    """Seconds from ``make run`` on a fresh clone to a ready service. ``reuse_venv`` (the smoke
    profile, which checks the harness, not the figure): the clone runs on this checkout's
    virtualenv when that one is already installed for it, so no packages are installed."""
    tmp = Path(tempfile.mkdtemp(prefix="dialback-coldstart-"))
    clone = tmp / "dialback"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
        check=True,
        timeout=120,
    )
    command = ["make", "run"]
    stamp = _installed_stamp(clone) if reuse_venv else None
    if stamp is not None:
        # -o: the clone's pyproject.toml is newer than the stamp; without it make would
        # reinstall this checkout's package from the clone (deleted afterwards).
        command += [f"VENV={stamp.parent}", "-o", str(stamp)]
    internal = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIALBACK_", "VIRTUAL_ENV"))}
    env.update(
        {
            "DIALBACK_HOST": "127.0.0.1",
            "DIALBACK_PUBLIC_PORT": str(free_port()),
            "DIALBACK_INTERNAL_PORT": str(internal),
        }
    )
    log = (tmp / "make-run.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        ready = None
        while time.monotonic() - started < timeout and proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"http://127.0.0.1:{internal}/health/ready", timeout=1)
                if r.status_code == 200:
                    ready = time.monotonic() - started
                    break
            time.sleep(0.1)
        if ready is None:
            tail = (tmp / "make-run.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"make run on a fresh clone not ready in {timeout:g} s: {tail}")
    finally:
        _stop_group(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"make_run_cold_start_s": ready}

"""Run a real ``dialback serve`` process on free loopback ports; stop it by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
from testbed.servers import free_port


class DialbackProcess:
    """A dialback server subprocess with its own ports and environment."""

    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path | None = None) -> None:
        self.public_port = free_port()
        self.internal_port = free_port()
        self.cwd = cwd
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
        self.env = {
            **inherited,
            "DIALBACK_HOST": "127.0.0.1",
            "DIALBACK_PUBLIC_PORT": str(self.public_port),
            "DIALBACK_INTERNAL_PORT": str(self.internal_port),
            **env,
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}"

    def start(self, timeout: float = 30.0) -> DialbackProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dialback", "serve"],
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.kill()
                tail = self.log_path.read_text()[-3000:]
                raise RuntimeError(f"dialback exited with {self.proc.returncode}: {tail}")
            try:
                if httpx.get(f"{self.internal_url}/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"dialback not ready in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` and wait for the process to end."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it hangs."""
        self.kill(signal.SIGTERM)


def ui_sign_in(internal_url: str, username: str, password: str) -> httpx.Response:
    """Sign in to the Callback UI of a running dialback as a browser does (the form, its CSRF
    cookie, the POST); the POST's answer (303 with a session cookie when it worked)."""
    import re

    with httpx.Client(base_url=internal_url, timeout=10) as browser:
        form = browser.get("/ui/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert form.status_code == 200 and token, form.text
        return browser.post(
            "/ui/login",
            data={"username": username, "password": password, "csrf_token": token.group(1)},
        )

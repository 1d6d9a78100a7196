"""Real Prometheus, Alertmanager and a webhook receiver for end-to-end alerting tests.

Everything listens on 127.0.0.1 on free ports, runs from a temporary directory and is stopped
by PID. A missing binary fails with the command that installs it.
"""

from __future__ import annotations

import http.server
import json
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from testbed.servers import MissingTool, free_port, wait_port

INSTALL = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"


def _binary(name: str) -> str:
    exe = shutil.which(name)
    if not exe:
        raise MissingTool(f"{name} not found; install it with: {INSTALL}")
    return exe


class WebhookReceiver:
    """Collects Alertmanager webhook notifications."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        received = self.notifications

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerts(self, alertname: str, status: str, **labels: str) -> list[dict[str, Any]]:
        """Alerts received with this name and status (firing/resolved) and labels."""
        out = []
        for n in list(self.notifications):
            for a in n.get("alerts", []):
                lbl = a.get("labels", {})
                if (
                    lbl.get("alertname") == alertname
                    and a.get("status") == status
                    and all(lbl.get(k) == v for k, v in labels.items())
                ):
                    out.append(a)
        return out


@dataclass
class _Proc:
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(self.args, stdout=fh, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@dataclass
class Alertmanager:
    """One Alertmanager routing every alert to the webhook at once."""

    dir: Path
    webhook_url: str
    port: int = field(default_factory=free_port)
    _p: _Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        cfg = {
            "route": {
                "receiver": "hook",
                "group_by": ["alertname", "service"],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "hook",
                    "webhook_configs": [{"url": self.webhook_url, "send_resolved": True}],
                }
            ],
        }
        conf = self.dir / "alertmanager.yml"
        conf.write_text(yaml.safe_dump(cfg))
        (self.dir / "am-data").mkdir(exist_ok=True)
        self._p = _Proc(
            [
                _binary("prometheus-alertmanager"),
                f"--config.file={conf}",
                f"--storage.path={self.dir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            self.dir / "alertmanager.log",
        )
        self._p.start()
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self._p:
            self._p.stop()


@dataclass
class Prometheus:
    """One Prometheus scraping the given targets every second and evaluating rules every second."""

    dir: Path
    targets: list[str]
    rule_files: list[Path]
    alertmanager_url: str | None = None
    target_labels: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    _p: _Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        cfg: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": "dialback",
                    "scrape_interval": "1s",
                    "static_configs": [{"targets": self.targets, "labels": self.target_labels}],
                }
            ],
        }
        if self.alertmanager_url:
            host = self.alertmanager_url.removeprefix("http://")
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host]}]}]}
        conf = self.dir / "prometheus.yml"
        conf.write_text(yaml.safe_dump(cfg))
        (self.dir / "prom-data").mkdir(exist_ok=True)
        self._p = _Proc(
            [
                _binary("prometheus"),
                f"--config.file={conf}",
                f"--storage.tsdb.path={self.dir / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            self.dir / "prometheus.log",
        )
        self._p.start()
        wait_port(self.port, timeout=30)
        return self

    def stop(self) -> None:
        if self._p:
            self._p.stop()

    def query(self, expr: str) -> dict[str, Any]:
        """Run an instant query; the whole API answer."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return r.json()

    def wait_for_samples(self, expr: str, timeout: float = 30.0) -> list[Any]:
        """Wait until ``expr`` returns at least one sample."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = self.query(expr)
            if last.get("status") == "success" and last["data"]["result"]:
                return list(last["data"]["result"])
            time.sleep(0.5)
        raise AssertionError(f"no samples for {expr} within {timeout}s: {last}")

"""The dashboards' PromQL: collected, made runnable, picked apart, and run on a real Prometheus.

`dashboard_queries()` lists every panel expression of dialback's Grafana dashboards and
`substitute()` replaces Grafana's variables so Prometheus can run it; the live end-to-end test
reuses both. The rest serves tests/dashboards/test_dashboards.py: a light PromQL reader (metric
names, label matchers, grouping labels) and a throwaway Prometheus server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testbed.servers import MissingTool, free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "charts" / "dialback" / "dashboards"
DASHBOARDS = ("dialback-business-logic", "dialback-performance")

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
INSTALL_HINT = "apt-get update && apt-get install -y --no-install-recommends prometheus"

# What the live end-to-end test and the parse check put in place of Grafana's variables.
DEFAULTS = {
    "__rate_interval": "1m",
    "__range": "1h",
    "__interval": "1m",
    "tenant": ".*",
    "pod": ".*",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def load(name: str) -> dict[str, Any]:
    """One dashboard, parsed from charts/dialback/dashboards/<name>.json."""
    return json.loads((DASHBOARD_DIR / f"{name}.json").read_text(encoding="utf-8"))


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, with the panels of collapsed rows after their row."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) for every PromQL target of both dashboards."""
    out = []
    for name in DASHBOARDS:
        d = load(name)
        for panel in iter_panels(d):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((d["uid"], panel["title"], target["expr"]))
    return out


def substitute(expr: str, **values: str) -> str:
    """The expression with Grafana's variables replaced (defaults: DEFAULTS); others kept."""
    table = {**DEFAULTS, **values}

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return table.get(name, m.group(0))

    return _VARIABLE.sub(repl, expr)


def variables_in(expr: str) -> set[str]:
    """Names of the Grafana variables an expression uses."""
    return {a or b or c for a, b, c in _VARIABLE.findall(expr)}


# --------------------------------------------------------------------------- a light reader
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", re.IGNORECASE
)
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])\d[A-Za-z0-9_.]*")
_IDENT = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end"}
    | {"by", "without", "on", "ignoring", "group_left", "group_right"}
)


def _mask_strings(expr: str) -> str:
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (identifiers that are not functions or keywords)."""
    s = _mask_strings(substitute(expr))
    s = _GROUPING.sub(" ", s)
    s = re.sub(r"\{[^{}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = _NUMBER.sub(" ", s)
    names = set()
    for name, call in _IDENT.findall(s):
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) for every vector selector with braces."""
    s = _mask_strings(substitute(expr))
    return [
        (name, set(_MATCHER.findall(body)))
        for name, body in _SELECTOR.findall(s)
        if name.lower() not in _KEYWORDS
    ]


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by / without / on / ignoring / group_left / group_right clauses."""
    s = _mask_strings(substitute(expr))
    labels: set[str] = set()
    for _kw, body in _GROUPING.findall(s):
        labels.update(x.strip() for x in body.split(",") if x.strip())
    return labels


# --------------------------------------------------------------------------- a real Prometheus
class MissingPrometheus(MissingTool):
    """Prometheus (Debian package `prometheus`) is not installed."""


def require_binaries() -> None:
    """Fail with the install command when prometheus or promtool is missing."""
    for path in (PROMETHEUS, PROMTOOL):
        if not (os.path.exists(path) or shutil.which(Path(path).name)):
            raise MissingPrometheus(f"{path} not found; install it with: {INSTALL_HINT}")


def _binary(path: str) -> str:
    return path if os.path.exists(path) else shutil.which(Path(path).name) or path


def backfill(openmetrics: str, data_dir: Path) -> None:
    """Write OpenMetrics text (ending in `# EOF`) into TSDB blocks under data_dir."""
    require_binaries()
    data_dir.mkdir(parents=True, exist_ok=True)
    src = data_dir.parent / "backfill.om"
    src.write_text(openmetrics, encoding="utf-8")
    subprocess.run(
        [_binary(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", str(src), str(data_dir)],
        check=True,
        capture_output=True,
        timeout=120,
    )


class PrometheusServer:
    """A Prometheus with no scrape targets on a free 127.0.0.1 port, stopped by PID."""

    def __init__(self, workdir: Path, data_dir: Path | None = None) -> None:
        self.workdir = workdir
        self.data_dir = data_dir or workdir / "data"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> PrometheusServer:
        require_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
        self.port = free_port()
        log = (self.workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                _binary(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=30d",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "prometheus exited: " + (self.workdir / "prometheus.log").read_text()[-2000:]
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"prometheus not ready on port {self.port} after {timeout}s")

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """The JSON answer of /api/v1/query (errors included, never raised)."""
        form = {"query": expr}
        if at is not None:
            form["time"] = f"{at:.3f}"
        req = urllib.request.Request(
            f"{self.url}/api/v1/query",
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return dict(json.load(r))
        except urllib.error.HTTPError as e:  # 400 / 422 carry the error as JSON
            with e:
                return dict(json.load(e))

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

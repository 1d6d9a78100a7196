"""Load generators: wrk (the real one, for ``make bench``) and a tiny built-in one (smoke mode).

Both send create-callback POSTs with a fresh random phone number per request, to 127.0.0.1
only, for a bounded time, and return the same ``LoadResult``.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CREATE_PATH = "/engagement/v3/callbacks/create"
WRK_INSTALL = "apt-get install -y wrk"

# One thread (2 cores: the other one is the server's), a body per request built in Lua, and a
# JSON summary line written by done() so nothing depends on wrk's human output.
WRK_SCRIPT = r"""
local path, headers, svc, desired

function init(args)
  headers = {["Content-Type"] = "application/json", ["x-api-key"] = args[1]}
  math.randomseed(tonumber(args[2]))
  desired = args[3]
  svc = args[4]
  path = args[5]
end

function request()
  local phone = string.format("+1415%03d%04d", math.random(200, 999), math.random(0, 9999))
  local body = '{"serviceName":"' .. svc .. '","phoneNumber":"' .. phone ..
    '","desiredTime":"' .. desired .. '","priority":5,"userData":{"orderId":"A' ..
    math.random(1, 999999) .. '","channel":"web"}}'
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


class LoadError(RuntimeError):
    """The load run failed or the server answered errors."""


@dataclass
class LoadResult:
    """Throughput and latency of one bounded load run."""

    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.status_errors) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float]:
        """Plain numbers for the JSON report."""
        return {**asdict(self), "rps": round(self.rps, 1)}


def create_body(service: str, desired: str, rng: random.Random) -> bytes:
    """The same create body the wrk script sends."""
    phone = f"+1415{rng.randint(200, 999):03d}{rng.randint(0, 9999):04d}"
    return (
        f'{{"serviceName":"{service}","phoneNumber":"{phone}","desiredTime":"{desired}",'
        f'"priority":5,"userData":{{"orderId":"A{rng.randint(1, 999999)}","channel":"web"}}}}'
    ).encode()


def wrk_path() -> str:
    """The wrk binary, or a LoadError naming the install command."""
    exe = shutil.which("wrk")
    if not exe:
        raise LoadError(f"wrk is not installed; install it (as root) with: {WRK_INSTALL}")
    return exe


def run_wrk(
    port: int,
    api_key: str,
    *,
    service: str,
    desired: str,
    connections: int,
    seconds: float,
    seed: int,
) -> LoadResult:
    """Run wrk (1 thread) against 127.0.0.1:port for ``seconds``."""
    exe = wrk_path()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT)
        script = f.name
    try:
        cmd = [
            exe,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            script,
            f"http://127.0.0.1:{port}{CREATE_PATH}",
            "--",
            api_key,
            str(seed),
            desired,
            service,
            CREATE_PATH,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        Path(script).unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise LoadError(
            f"wrk failed ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
        )
    d = json.loads(line.split(" ", 1)[1])
    return LoadResult(
        requests=d["requests"],
        seconds=d["duration_us"] / 1e6,
        status_errors=d["status_errors"],
        socket_errors=d["socket_errors"],
        p50_ms=d["p50_us"] / 1000,
        p90_ms=d["p90_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        max_ms=d["max_us"] / 1000,
    )


async def _one_connection(
    port: int,
    head: bytes,
    service: str,
    desired: str,
    rng: random.Random,
    deadline: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
            body = create_body(service, desired, rng)
            started = time.perf_counter()
            writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            if status >= 400:
                errors.append(status)
    finally:
        writer.close()


def run_python_load(
    port: int,
    api_key: str,
    *,
    service: str,
    desired: str,
    connections: int,
    seconds: float,
    seed: int,
) -> LoadResult:
    """A small keep-alive HTTP/1.1 load generator (smoke mode: no wrk needed)."""
    head = (
        f"POST {CREATE_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nx-api-key: {api_key}\r\n"
    ).encode()
    latencies: list[float] = []
    errors: list[int] = []

    async def go() -> float:
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(
            *(
                _one_connection(
                    port,
                    head,
                    service,
                    desired,
                    random.Random(seed + i),
                    deadline,
                    latencies,
                    errors,
                )
                for i in range(connections)
            )
        )
        return time.monotonic() - started

    elapsed = asyncio.run(go())
    lat = sorted(latencies)
    if not lat:
        raise LoadError("the built-in load generator completed no request")
    return LoadResult(
        requests=len(lat),
        seconds=elapsed,
        status_errors=len(errors),
        socket_errors=0,
        p50_ms=percentile(lat, 50) * 1000,
        p90_ms=percentile(lat, 90) * 1000,
        p99_ms=percentile(lat, 99) * 1000,
        max_ms=lat[-1] * 1000,
    )


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]

"""Per-request cost of dialback's HTTP instrumentation against prometheus-fastapi-instrumentator.

Method: three copies of one minimal FastAPI app (a POST route answering a small JSON body,
no I/O, behind dialback's correlation middleware) — bare, with dialback's
``RequestObservability`` as the middleware's observer (with a real ``Metrics``), and
instrumented by ``prometheus_fastapi_instrumentator.Instrumentator`` with its defaults (own
registry) — are called directly as ASGI applications, in-process, many times each, in
alternating rounds. The per-request cost of an instrumentation is its mean time per call in
its fastest round minus the bare app's fastest (the rounds least disturbed by other work, as
``timeit`` reports); the median of the per-round differences is reported beside it. Network and
server costs are the same for all three and are left out, so the difference is measured
precisely even on a noisy machine.

dialback's observer also writes one request log line at info; the peer writes none. The
headline ratio is measured with the log level at error (metrics only, like the peer); the
ratio with the info line (written as JSON to /dev/null) is reported next to it.

Run: ``python -m bench.instrumentation --calls 5000 --rounds 15`` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message

PATH = "/engagement/v3/callbacks/create"
BODY = b'{"serviceName":"sales","phoneNumber":"+14155550123"}'


def base_app(observe: Any = None) -> FastAPI:
    """The minimal app every variant wraps, behind dialback's correlation middleware (with
    ``observe``, dialback's per-request observability)."""
    from dialback.web.middleware import CorrelationAndLimits

    app = FastAPI()
    app.add_middleware(
        CorrelationAndLimits, max_body_bytes=65536, on_oversize=lambda: None, observe=observe
    )

    @app.post(PATH)
    async def create() -> Response:
        return Response(
            b'{"status":{"code":200,"message":"Successful","corrId":"x"},"data":{"id":"y"}}',
            media_type="application/json",
        )

    return app


def dialback_app() -> FastAPI:
    """The minimal app with dialback's RequestObservability (metrics and request line)."""
    from dialback.observability.http_metrics import RequestObservability
    from dialback.observability.metrics import Metrics

    return base_app(observe=RequestObservability(Metrics()))


def peer_app() -> FastAPI:
    """The minimal app instrumented by prometheus-fastapi-instrumentator (defaults)."""
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

    app = base_app()
    Instrumentator(registry=CollectorRegistry()).instrument(app)
    return app


SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": PATH,
    "raw_path": PATH.encode(),
    "root_path": "",
    "query_string": b"",
    "headers": [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
        (b"x-api-key", b"k"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 3005),
}


async def _receive() -> Message:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def _time_calls(app: ASGIApp, calls: int) -> float:
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    gc.collect()
    started = time.perf_counter()
    for _ in range(calls):
        await app(dict(SCOPE), _receive, send)
    elapsed = time.perf_counter() - started
    if statuses.count(200) != calls:
        raise RuntimeError(f"unexpected statuses: {sorted(set(statuses))}")
    return elapsed / calls


async def _measure(calls: int, rounds: int) -> dict[str, Any]:
    apps: dict[str, ASGIApp] = {"bare": base_app(), "dialback": dialback_app(), "peer": peer_app()}
    for app in apps.values():  # build the middleware stacks and warm up
        await _time_calls(app, max(50, calls // 10))
    per_round: dict[str, list[float]] = {name: [] for name in apps}
    names = list(apps)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            per_round[name].append(await _time_calls(apps[name], calls))
    # The fastest round of each variant is the one least disturbed by other work on the
    # machine (as timeit does); the median of per-round differences is reported beside it.
    best = {name: min(vals) for name, vals in per_round.items()}
    diffs = {
        name: [t - b for t, b in zip(per_round[name], per_round["bare"], strict=True)]
        for name in ("dialback", "peer")
    }
    return {
        "bare_us": best["bare"] * 1e6,
        "dialback_cost_us": (best["dialback"] - best["bare"]) * 1e6,
        "peer_cost_us": (best["peer"] - best["bare"]) * 1e6,
        "dialback_cost_median_diff_us": statistics.median(diffs["dialback"]) * 1e6,
        "peer_cost_median_diff_us": statistics.median(diffs["peer"]) * 1e6,
        "rounds_us": {k: [round(v * 1e6, 2) for v in vals] for k, vals in per_round.items()},
    }


def measure(calls: int, rounds: int) -> dict[str, Any]:
    """Costs with metrics only, then with dialback's info request line, and their ratios."""
    from dialback.observability.logging import setup_logging

    runner: Callable[..., Any]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        setup_logging("error", fmt="json", fd=devnull)
        metrics_only = runner(_measure(calls, rounds))
        setup_logging("info", fmt="json", fd=devnull)
        with_log = runner(_measure(calls, rounds))
    finally:
        os.close(devnull)
    return {
        "method": "in-process ASGI calls, alternating rounds, cost = best time/call - bare app's best",
        "calls_per_round": calls,
        "rounds": rounds,
        "metrics_only": metrics_only,
        "with_info_log_line": with_log,
        "instrumentation_vs_peer_ratio": _ratio(metrics_only),
        "instrumentation_with_log_vs_peer_ratio": _ratio(with_log),
    }


def _ratio(m: dict[str, Any]) -> float:
    # A cost at or below the noise floor (<= 0.05 us) is floored there, so the ratio stays finite.
    return max(m["dialback_cost_us"], 0.05) / max(m["peer_cost_us"], 0.05)


def main(argv: list[str] | None = None) -> int:
    """Print the measurement as one JSON object."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.calls, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

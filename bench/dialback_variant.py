"""Run ``dialback serve`` with its per-request observability removed, for the overhead ratio.

dialback has no setting to switch its HTTP metrics and request lines off, so this wrapper
replaces ``RequestObservability`` (the observer the correlation middleware calls once a
request is answered), before the apps are built, with a factory that returns no observer: the
request path is then exactly dialback's minus its metrics and its request log line.
Everything else — settings, runtime, monitor, event metrics, the correlation middleware — is
the real ``dialback serve``. Used only by the benchmark.
"""

from __future__ import annotations

from typing import Any


def _no_observer(_metrics: Any) -> None:
    return None


def main() -> int:
    """``dialback serve`` without per-request observability."""
    import dialback.app

    dialback.app.RequestObservability = _no_observer  # type: ignore[assignment,misc]
    from dialback.cli import main as cli_main

    return cli_main(["serve"])


if __name__ == "__main__":
    raise SystemExit(main())

"""Run ``dialback serve`` with its per-request observability removed, for the overhead ratio.

dialback has no setting to switch the RequestObservability middleware off, so this wrapper
replaces it, before the apps are built, with a factory that returns the wrapped app itself:
the request path is then exactly dialback's minus that middleware (its metrics and its
request log line). Everything else — settings, runtime, monitor, event metrics — is the real
``dialback serve``. Used only by the benchmark.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp


def _no_observability(app: ASGIApp, **_kwargs: Any) -> ASGIApp:
    return app


def main() -> int:
    """``dialback serve`` without the RequestObservability middleware."""
    import dialback.app

    dialback.app.RequestObservability = _no_observability  # type: ignore[assignment,misc]
    from dialback.cli import main as cli_main

    return cli_main(["serve"])


if __name__ == "__main__":
    raise SystemExit(main())

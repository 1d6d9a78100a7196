"""``dialback demo``: book a callback through the public API and follow it to completion."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request


class DemoError(Exception):
    """A failure the demo explains in one line (wrong key, server down, refused request)."""


def _post(url: str, key: str, body: dict) -> dict:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-api-key": key},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise DemoError(_refusal(exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DemoError(
            f"cannot reach {url} ({reason}); is dialback running there? "
            "(--url, or DIALBACK_PUBLIC_PORT for a local one)"
        ) from None
    except ValueError:
        raise DemoError(f"{url} did not answer JSON: is that dialback's public API?") from None


def _refusal(exc: urllib.error.HTTPError) -> str:
    try:
        message = json.loads(exc.read())["status"]["message"]
    except (ValueError, KeyError, TypeError, OSError):
        message = exc.reason
    if exc.code == 401:
        return (
            f"the API key was refused ({message}): use the key `dialback serve` printed at its "
            "last start (a generated demo key changes on every restart)"
        )
    return f"{exc.url} answered {exc.code}: {message}"


def run_demo(base: str, key: str, phone: str, timeout: float) -> int:
    """Create one immediate callback on service ``demo`` and print each state until COMPLETED."""
    try:
        return _follow(base.rstrip("/"), key, phone, timeout)
    except DemoError as exc:
        print(f"dialback demo: {exc}", file=sys.stderr)
        return 1


def _follow(base: str, key: str, phone: str, timeout: float) -> int:
    created = _post(
        f"{base}/engagement/v3/callbacks/create", key, {"serviceName": "demo", "phoneNumber": phone}
    )
    cid = created["data"]["id"]
    print(f"booked callback {cid} (corrId {created['status']['corrId']})", flush=True)
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = _post(f"{base}/engagement/v3/callbacks/retrieve", key, {"id": cid})["data"]
        state = (data["callbackState"], data.get("callbackReason"))
        if state != last:
            print(
                f"  {data['callbackState']}"
                + (f" ({data['callbackReason']})" if data.get("callbackReason") else ""),
                flush=True,
            )
            last = state
        if data["callbackState"] == "COMPLETED":
            return 0
        time.sleep(0.2)
    print(f"dialback demo: timed out after {timeout:g} s before COMPLETED", file=sys.stderr)
    return 1

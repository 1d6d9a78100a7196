"""``dialback demo``: book a callback through the public API and follow it to completion."""

from __future__ import annotations

import json
import sys
import time
import urllib.request


def _post(url: str, key: str, body: dict) -> dict:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-api-key": key},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def run_demo(base: str, key: str, phone: str, timeout: float) -> int:
    """Create one immediate callback on service ``demo`` and print each state until COMPLETED."""
    created = _post(
        f"{base}/engagement/v3/callbacks/create", key, {"serviceName": "demo", "phoneNumber": phone}
    )
    cid = created["data"]["id"]
    print(f"booked callback {cid} (corrId {created['status']['corrId']})")
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = _post(f"{base}/engagement/v3/callbacks/retrieve", key, {"id": cid})["data"]
        state = (data["callbackState"], data.get("callbackReason"))
        if state != last:
            print(
                f"  {data['callbackState']}"
                + (f" ({data['callbackReason']})" if data.get("callbackReason") else "")
            )
            last = state
        if data["callbackState"] == "COMPLETED":
            return 0
        time.sleep(0.2)
    print("timed out before COMPLETED", file=sys.stderr)
    return 1

"""A real ``dialback serve`` process's own output, at trace, on the embedded store: a booking, a
call-in and a write the database refuses never put userData or a number on stdout."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx

from tests.support.process import DialbackProcess

MARKER = "PRIVATE-ud-E2E-5K"
NUMBER = "+1 415 555 0144"
FROM_NUMBER = "+14155550145"
POOL = ["+14155550146", "+14155550147"]
FORMS = ("4155550144", "415 555 0144", "555 0144", "4155550145", "4155550146", "4155550147")
API_KEY = "e2e-privacy-key-0123456789abcdef"
ADMIN = "e2e-privacy-admin-token"


def test_a_trace_level_process_writes_no_user_data_and_no_number(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    env = {
        "DIALBACK_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "DIALBACK_LOG_LEVEL": "trace",
        "DIALBACK_LOG_FORMAT": "json",
        "DIALBACK_LOG_MAX_LEN": "32768",  # whole tracebacks: nothing cut away before the check
        "DIALBACK_DEMO": "true",
        "DIALBACK_DEMO_API_KEY": API_KEY,
        "DIALBACK_ADMIN_TOKENS": ADMIN,
        "DIALBACK_SIM_HANDLE_SECONDS": "0.1",
        "DIALBACK_SIM_ANSWER_PROBABILITY": "1",
    }
    proc = DialbackProcess(env, tmp_path / "out.log", cwd=tmp_path).start()
    public = httpx.Client(base_url=proc.public_url, headers={"x-api-key": API_KEY})
    admin = httpx.Client(base_url=proc.internal_url, headers={"authorization": f"Bearer {ADMIN}"})
    try:
        r = admin.put(
            "/admin/v1/tenants/demo/callin-groups/support",
            json={"numbers": POOL, "accessCode": {"enabled": False}},
        )
        assert r.status_code in (200, 201), r.text
        r = public.post(
            "/engagement/v3/callbacks/create",
            json={"serviceName": "demo", "phoneNumber": NUMBER, "userData": {"n": MARKER}},
        )
        assert r.status_code == 200, r.text
        cid = r.json()["data"]["id"]
        callin = {"groupName": "support", "fromPhoneNumber": FROM_NUMBER}
        r = public.post(
            "/engagement/v3/call-in/requests/create", json={**callin, "userData": {"n": MARKER}}
        )
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            history = admin.get(f"/admin/v1/callbacks/{cid}").json()["data"]["history"]
            if "COMPLETED" in [e["toState"] for e in history]:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"callback {cid} not completed: {history}")
        # The store refuses the next write (WAL: this connection writes beside the server's).
        with sqlite3.connect(db) as conn:
            conn.execute(
                """CREATE TRIGGER refuse BEFORE INSERT ON callin_requests
                   WHEN NEW.user_data LIKE '%REFUSE%'
                   BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"""
            )
        r = public.post(
            "/engagement/v3/call-in/requests/create",
            json={**callin, "userData": {"n": f"{MARKER} REFUSE"}},
        )
        assert r.status_code == 500, r.text
        time.sleep(0.2)  # request lines are written within 10 ms
    finally:
        public.close()
        admin.close()
        proc.stop()
    out = proc.log_path.read_text()
    assert "refused by a test trigger" in out and "create callback: stored" in out
    assert MARKER not in out, [ln for ln in out.splitlines() if MARKER in ln]
    for form in FORMS:
        assert form not in out, [ln for ln in out.splitlines() if form in ln]

"""Logs: JSON lines with corrId/tenant/callbackId, the trace-level story, privacy, level changes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pty
from collections.abc import Callable
from pathlib import Path

import pytest
from testbed.metrics_parse import parse, value

from tests.support.logs import logging_to
from tests.support.stack import Stack, wait_for

# One immediate create-callback at trace level writes this story (docs/logging.md):
# the request: 8 trace steps + 1 debug "callback booked" + 1 request line, all with its corrId;
# the dispatch: 3 monitor lines (claimed, published, QUEUED); the outcomes: 3 debug lines
# (QUEUED -> ROUTING -> PROCESSING -> COMPLETED), all with its callbackId.
REQUEST_LINES = 10
DISPATCH_LINES = 3
OUTCOME_LINES = 3


async def test_trace_story_of_one_create_callback(
    stack: Stack, captured_logs: Callable[[], list[dict]]
) -> None:
    key = await stack.tenant()
    await stack.internal.put("/admin/v1/logging", json={"level": "trace"})
    corr = "story-0001"
    r = await stack.public.post(
        "/engagement/v3/callbacks/create",
        json={
            "serviceName": "sales",
            "phoneNumber": "+1 415 555 0199",
            "userData": {"ssn": "SSN-123-45-6789"},
        },
        headers={"x-api-key": key, "x-correlation-id": corr},
    )
    assert r.status_code == 200 and r.json()["status"]["corrId"] == corr
    cid = r.json()["data"]["id"]

    async def outcomes_logged() -> bool:
        lines = [
            ln
            for ln in captured_logs()
            if ln.get("callbackId") == cid and ln["logger"] == "dialback.monitor"
        ]
        return sum(1 for ln in lines if ln["level"] == "debug") >= OUTCOME_LINES

    await wait_for(outcomes_logged, timeout=15)
    lines = captured_logs()
    request = [ln for ln in lines if ln.get("corrId") == corr]
    assert len(request) == REQUEST_LINES, [ln["msg"] for ln in request]
    assert all(ln["tenant"] == "acme" for ln in request)
    assert request[-1]["logger"] == "dialback.request" and request[-1]["status"] == 200
    assert {ln["callbackId"] for ln in request[-3:]} == {cid}
    story = [ln for ln in lines if ln.get("callbackId") == cid and ln.get("corrId") != corr]
    dispatch = [ln for ln in story if ln["msg"].startswith("monitor:")]
    outcomes = [ln for ln in story if ln["level"] == "debug" and ln["logger"] == "dialback.monitor"]
    assert len(dispatch) == DISPATCH_LINES and len(outcomes) == OUTCOME_LINES
    for ln in lines:
        text = json.dumps(ln)
        assert "4155550199" not in text and "555 0199" not in text, text
        assert "SSN-123" not in text, text
        assert {"ts", "level", "logger", "msg"} <= set(ln)


async def test_log_level_changes_at_run_time(
    stack: Stack, captured_logs: Callable[[], list[dict]]
) -> None:
    key = await stack.tenant()
    r = await stack.internal.put("/admin/v1/logging", json={"level": "info"})
    assert r.status_code == 200 and r.json()["data"]["previous"] == "trace"
    assert (await stack.internal.get("/admin/v1/logging")).json()["data"]["level"] == "info"
    body = {"serviceName": "sales", "phoneNumber": "+14155550123"}
    await stack.public.post(
        "/engagement/v3/callbacks/create",
        json=body,
        headers={"x-api-key": key, "x-correlation-id": "info-1"},
    )
    await asyncio.sleep(0.05)  # request lines are written within 10 ms, in batches
    info_lines = [ln for ln in captured_logs() if ln.get("corrId") == "info-1"]
    assert [ln["level"] for ln in info_lines] == ["info"]  # just the request line
    r = await stack.internal.put("/admin/v1/logging", json={"level": "loud"})
    assert r.status_code == 400 and "level" in r.json()["status"]["message"]
    # GES's spelling, any case: answered with the canonical name.
    for given, canonical in (("DEBUG", "debug"), ("WARNING", "warn"), ("Info", "info")):
        r = await stack.internal.put("/admin/v1/logging", json={"level": given})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["level"] == canonical
        assert (await stack.internal.get("/admin/v1/logging")).json()["data"]["level"] == canonical
    r = await stack.internal.put(
        "/admin/v1/logging", json={"level": "debug"}, headers={"authorization": "Bearer nope"}
    )
    assert r.status_code == 401
    await stack.internal.put("/admin/v1/logging", json={"level": "info"})


def test_long_lines_are_capped_and_stay_json(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with logging_to(fd, max_len=600, fmt="json"):
            logging.getLogger("dialback.test").info("x" * 5000, extra={"big": "y" * 5000})
    finally:
        os.close(fd)
    [line] = path.read_text().splitlines()
    assert len(line.encode()) <= 600
    ev = json.loads(line)
    assert ev["truncated"] is True and ev["msg"].startswith("xxx")


def test_console_format_on_a_terminal() -> None:
    master, slave = pty.openpty()
    try:
        with logging_to(slave, fmt="auto"):
            logging.getLogger("dialback.test").warning("hello %s", "+14155550123", extra={"k": "v"})
            out = os.read(master, 4096).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert "WARN" in out and "dialback.test: hello" in out and "k=v" in out
    assert not out.lstrip().startswith("{")
    assert "4155550123" not in out


async def test_unwritable_log_counts_logging_failure(stack: Stack) -> None:
    fd = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC
    try:
        with logging_to(fd, fmt="json") as handler:
            handler.on_failure = stack.rt.events.logging_failed
            before = value(parse((await stack.internal.get("/metrics")).text), "LOGGING_FAILURE")
            logging.getLogger("dialback.test").warning("this line cannot be written")
            after = value(parse((await stack.internal.get("/metrics")).text), "LOGGING_FAILURE")
    finally:
        os.close(fd)
    assert after is not None and before is not None and after >= before + 1


def test_masking_hides_numbers_but_not_identifiers() -> None:
    from dialback.observability.logging import JsonFormatter

    record = logging.LogRecord(
        "dialback.test", logging.INFO, __file__, 1, "ring %s", ("+44 20 7946 0018",), None
    )
    record.corrId = "20260123456789-abc"
    record.callbackId = "12345678-1234-5678-1234-567812345678"
    record.note = "customer 07946 001 899 asked"
    ev = json.loads(JsonFormatter(2048).format(record))
    assert "7946 0018" not in ev["msg"] and ev["msg"].endswith("18")
    assert ev["corrId"] == "20260123456789-abc"
    assert ev["callbackId"] == "12345678-1234-5678-1234-567812345678"
    assert "001 899" not in ev["note"]
    assert (
        JsonFormatter(2048)
        .format(
            logging.LogRecord(
                "t", logging.INFO, __file__, 1, "id 3e45f2b88de4401234567abc", (), None
            )
        )
        .count("3e45f2b88de4401234567abc")
        == 1
    )


FORGED = "sales\n00:00:00.000 ERROR dialback.app: forged\x1b[31m red\u2028\x85"


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_client_values_cannot_forge_or_colour_a_line(
    stack: Stack, tmp_path: Path, fmt: str
) -> None:
    key = await stack.tenant()
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with logging_to(fd, "trace", fmt=fmt):
            headers = {"x-api-key": key, "x-correlation-id": "forge-1"}
            r = await stack.public.post(
                "/engagement/v3/callbacks/create",
                json={"serviceName": FORGED, "phoneNumber": "+14155550123"},
                headers=headers,
            )
            assert r.status_code == 400, r.text
            quoted = "".join(f"%{b:02X}" for b in FORGED.encode())
            r = await stack.public.get(
                f"/engagement/v3/callbacks/availability/{quoted}", headers=headers
            )
            assert r.status_code == 404, r.text
            await asyncio.sleep(0.05)  # request lines are written within 10 ms
    finally:
        os.close(fd)
    raw = path.read_bytes()
    lines = raw.split(b"\n")[:-1]
    # Other parts of the process (the monitor) may log meanwhile; what matters is that every
    # line carrying the client's text is one of this request's lines, not a forged one.
    assert any(b"forge-1" in ln for ln in lines), lines
    assert all(b"forge-1" in ln for ln in lines if b"forged" in ln), lines
    assert not any(ln.startswith(b"00:00:00.000") for ln in lines), lines
    # Not one control character is written as itself: each record is one line, no colour.
    assert not any(b < 0x20 or b == 0x7F for ln in lines for b in ln), lines
    [accepted] = [ln.decode() for ln in lines if b"request accepted" in ln]
    if fmt == "console":
        # Nor a Unicode line break a terminal or a line splitter would honour.
        assert "\u2028".encode() not in raw and "\x85".encode() not in raw
        assert "service=sales\\n00:00:00.000 ERROR" in accepted and "\\x1b[31m" in accepted
        assert "\\u2028\\x85" in accepted
    else:
        assert json.loads(accepted)["service"] == FORGED

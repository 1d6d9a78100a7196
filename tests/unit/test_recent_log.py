"""The ring of recent warnings and errors: bounded, scrubbed as the log line is, by corrId and
tenant scope; fed by the request line's direct write without turning that fast path off."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialback.kit.context import bound, corr_id_var
from dialback.observability import logging as dialback_logging
from dialback.observability.logging import log_request
from dialback.observability.recent_log import RecentLog, recent_log
from tests.support.logs import logging_to


@pytest.fixture
def ring() -> Iterator[RecentLog]:
    root = logging.getLogger()
    saved = root.level
    ring = RecentLog(capacity=3)
    root.addHandler(ring)
    root.setLevel(logging.INFO)
    try:
        yield ring
    finally:
        root.removeHandler(ring)
        root.setLevel(saved)


def test_keeps_warnings_and_errors_scrubbed_and_bounded(ring: RecentLog) -> None:
    log = logging.getLogger("dialback.test.ring")
    token = corr_id_var.set("c-1")
    try:
        with bound(tenant="acme"):
            log.warning("number +44 20 7946 0958 refused", extra={"userData": {"k": "secret"}})
        log.info("not kept")
    finally:
        corr_id_var.reset(token)
    [kept] = ring.records()
    assert kept.level == "warn" and kept.logger == "dialback.test.ring" and kept.corr_id == "c-1"
    assert kept.message == "number +44***********58 refused"  # masked as the line is
    assert kept.fields == {"tenant": "acme"}  # userData is never kept
    for i in range(4):
        log.error("e%d", i)
    assert [r.message for r in ring.records()] == ["e3", "e2", "e1"]  # newest first, 3 kept
    assert ring.held() == 3 and ring.kept == 5
    assert ring.records(corr_id="c-1") == []  # it went with the oldest


def test_a_scoped_reader_sees_its_tenants_lines_only(ring: RecentLog) -> None:
    log = logging.getLogger("dialback.test.ring")
    with bound(tenant="acme"):
        log.error("acme's")
    with bound(tenant="globex"):
        log.error("globex's")
    log.error("nobody's")
    assert [r.message for r in ring.records(scope=frozenset({"acme"}))] == ["acme's"]
    assert len(ring.records(scope=None)) == 3


def test_the_request_lines_direct_write_feeds_the_ring(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with logging_to(fd, fmt="json"):
            ring = recent_log()  # as the container installs it, beside the stdout handler
            before = ring.kept
            assert dialback_logging._plain_json_handler() is not None  # still the direct write
            with bound(tenant="acme"):
                log_request(
                    logging.ERROR, "POST", "/engagement/v3/callbacks/create", 500, 0.002, "c-9"
                )
                log_request(logging.INFO, "GET", "/x", 200, 0.001, "c-10")
            assert ring.kept == before + 1
            [line] = ring.records(corr_id="c-9")
            assert line.level == "error" and line.logger == "dialback.request"
            assert line.message == "POST /engagement/v3/callbacks/create 500 2.0ms"
            assert line.fields["status"] == "500" and line.fields["tenant"] == "acme"
            assert ring.records(corr_id="c-10") == []
    finally:
        os.close(fd)
    assert len(path.read_text().splitlines()) == 2  # both written to the log as before


def test_a_long_record_keeps_its_head_and_its_tail(ring: RecentLog) -> None:
    logging.getLogger("dialback.test.ring").error("START" + "x" * 5000 + "RuntimeError: the end")
    [kept] = ring.records()
    assert kept.message.startswith("START") and kept.message.endswith("RuntimeError: the end")
    assert len(kept.message) <= 2003 and "\n…\n" in kept.message

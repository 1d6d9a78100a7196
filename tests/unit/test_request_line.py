"""The request line's direct JSON rendering writes exactly what the logging path writes."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialback.kit.context import bound
from dialback.observability import logging as dialback_logging
from dialback.observability.logging import (
    RequestLine,
    StdoutHandler,
    log_request,
    log_request_lines,
)
from tests.support.logs import logging_to


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "log.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with logging_to(fd, fmt="json"):
            yield path
    finally:
        os.close(fd)


def logging_handler() -> StdoutHandler | None:
    return dialback_logging._handler


class _PassAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return True


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_direct_and_logging_paths_write_the_same_line(log_file: Path) -> None:
    assert logging.getLogger().handlers == [logging_handler()]  # nothing else listens
    route = "/engagement/v3/callbacks/create"
    with bound(
        tenant="acme", callbackId="7f0c5e2a-1111-2222-3333-444455556666", note="+1 415 555 0199"
    ):
        log_request(logging.INFO, "POST", route, 200, 0.0031234, "corr-1")  # direct
        request_logger = logging.getLogger("dialback.request")
        request_logger.addFilter(_PassAll())  # a filter forces the logging path
        try:
            log_request(logging.INFO, "POST", route, 200, 0.0031234, "corr-1")
        finally:
            request_logger.filters.clear()
    direct, via_logging = _lines(log_file)
    assert list(direct) == list(via_logging)  # same keys, same order
    assert {k: v for k, v in direct.items() if k != "ts"} == {
        k: v for k, v in via_logging.items() if k != "ts"
    }
    assert direct["msg"] == f"POST {route} 200 3.1ms" and direct["durationMs"] == 3.12
    assert direct["tenant"] == "acme" and direct["corrId"] == "corr-1"
    assert "555 0199" not in direct["note"]  # context fields are masked on both paths


def test_request_line_respects_the_level(log_file: Path) -> None:
    logging.getLogger().setLevel(logging.ERROR)
    log_request(logging.INFO, "GET", "/x", 200, 0.001, "c")
    log_request(logging.ERROR, "GET", "/x", 500, 0.001, "c")
    [line] = _lines(log_file)
    assert line["level"] == "error" and line["status"] == 500


def test_unwritable_request_line_is_counted(tmp_path: Path) -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    failures = []
    try:
        with logging_to(fd, fmt="json", on_failure=lambda: failures.append(1)):
            log_request(logging.INFO, "GET", "/x", 200, 0.001, "c")
    finally:
        os.close(fd)
    assert failures == [1]


async def test_a_request_line_is_written_at_once_and_keeps_its_order(log_file: Path) -> None:
    log_request(logging.INFO, "POST", "/a", 200, 0.001, "c1")
    assert [line["route"] for line in _lines(log_file)] == ["/a"]  # no timer to wait for
    logging.getLogger("dialback.test").warning("something else")
    log_request(logging.INFO, "POST", "/c", 201, 0.001, "c3")
    assert [line.get("route", line["msg"]) for line in _lines(log_file)] == [
        "/a",
        "something else",
        "/c",
    ]


def test_a_batch_of_request_lines_is_one_write(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = logging_handler()
    assert handler is not None
    writes: list[bytes] = []
    real_write = handler._write

    def write(data: bytes) -> None:
        writes.append(data)
        real_write(data)

    monkeypatch.setattr(handler, "_write", write)
    logging.getLogger().setLevel(logging.INFO)
    lines: list[RequestLine] = [
        (time.time(), level, "POST", route, status, 1.0, "c", {})
        for level, route, status in (
            (logging.INFO, "/a", 200),
            (logging.DEBUG, "/hidden", 200),  # below the level: left out
            (logging.ERROR, "/b", 500),
        )
    ]
    log_request_lines(lines)
    assert len(writes) == 1
    assert [(line["route"], line["level"]) for line in _lines(log_file)] == [
        ("/a", "info"),
        ("/b", "error"),
    ]


def test_a_long_request_line_is_capped_like_any_other(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with logging_to(fd, max_len=600, fmt="json"), bound(note="n" * 1000):
            log_request(logging.INFO, "POST", "/a", 200, 0.001, "c1")
    finally:
        os.close(fd)
    [line] = path.read_text().splitlines()
    assert len(line.encode()) <= 600
    ev = json.loads(line)
    assert ev["truncated"] is True and ev["corrId"] == "c1" and ev["route"] == "/a"

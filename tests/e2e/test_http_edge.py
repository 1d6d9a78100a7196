"""The HTTP edge of a real ``dialback serve`` (both listeners): slowloris connections, headers
that never end, idle keep-alive connections and the connection cap are all bounded, and
normal requests (large but allowed headers included) still work. Issue #11, item 4."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.process import DialbackProcess

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
KEEPALIVE_TIMEOUT = 1.5
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 60
MARGIN = 1.5  # scheduling on 2 shared cores
API_KEY = "edge-test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DialbackProcess]:
    """One dialback on the embedded store with small edge limits (the HTTP edge needs no PG)."""
    tmp = tmp_path_factory.mktemp("edge")
    proc = DialbackProcess(
        {
            "DIALBACK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/dialback.db",
            "DIALBACK_DEMO": "true",
            "DIALBACK_DEMO_API_KEY": API_KEY,
            "DIALBACK_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "DIALBACK_HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "DIALBACK_HTTP_KEEPALIVE_TIMEOUT_SECONDS": str(KEEPALIVE_TIMEOUT),
            "DIALBACK_HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
            "DIALBACK_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        },
        tmp / "serve.log",
        cwd=tmp,
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _read_until_closed(reader: asyncio.StreamReader, limit: float) -> bytes | None:
    """Everything the server sends until it closes; None if it is still open after ``limit``."""
    got = b""
    deadline = time.monotonic() + limit
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            chunk = await asyncio.wait_for(reader.read(65536), left)
            if not chunk:
                return got
            got += chunk
    except TimeoutError:
        return None
    except ConnectionError:
        return got


def _read_response(s: socket.socket) -> bytes:
    """One whole response (head and content-length body) from a blocking socket."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, got
        body += chunk
    return head + b"\r\n\r\n" + body


def _refusals(server: DialbackProcess) -> dict[tuple[str, str], float]:
    """ges_http_edge_refusals_total by (listener, reason), read from /metrics."""
    text = httpx.get(f"{server.internal_url}/metrics", timeout=5).text
    out = {}
    for line in text.splitlines():
        if line.startswith("ges_http_edge_refusals_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            out[(labels["listener"], labels["reason"])] = float(line.rsplit(" ", 1)[1])
    return out


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _envelope(answer: bytes) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = orjson.loads(body)["status"]
    assert head.lower().count(b"x-correlation-id: " + status["corrId"].encode()) == 1, answer
    return dict(status)


def test_slowloris_connections_on_both_ports_are_closed_within_the_header_timeout(
    server: DialbackProcess,
) -> None:
    async def dribbler(port: int) -> tuple[float, bytes | None]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"POST /engagement/v3/callbacks/create HTTP/1.1\r\nHost: x\r\n")

        async def dribble() -> None:
            for i in range(100):
                await asyncio.sleep(0.2)
                writer.write(b"X-%d: y\r\n" % i)

        feeding = asyncio.create_task(dribble())
        answer = await _read_until_closed(reader, HEADER_TIMEOUT + MARGIN + 2)
        feeding.cancel()
        writer.close()
        return time.monotonic() - started, answer

    async def attack() -> list[tuple[float, bytes | None]]:
        ports = [server.public_port] * 25 + [server.internal_port] * 25
        return await asyncio.gather(*(dribbler(p) for p in ports))

    before = _refusals(server)
    results = asyncio.run(attack())
    still_open = [r for r in results if r[1] is None]
    assert not still_open, f"{len(still_open)} of 50 dribbling connections still open"
    for elapsed, answer in results:
        assert HEADER_TIMEOUT - 0.2 <= elapsed <= HEADER_TIMEOUT + MARGIN, elapsed
        assert answer is not None and _status(answer) == 408, answer
        status = _envelope(answer)
        assert status["code"] == 408 and "not complete within 1.5 seconds" in str(status["message"])
    assert httpx.get(f"{server.internal_url}/health/live", timeout=5).status_code == 200
    after = _refusals(server)
    for listener in ("public", "internal"):
        key = (listener, "header_timeout")
        assert after[key] - before[key] == 25, (listener, before, after)


def test_a_silent_connection_is_closed_after_the_header_timeout(server: DialbackProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.public_port), timeout=10) as s:
        started = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - started <= HEADER_TIMEOUT + MARGIN


def test_unterminated_oversized_headers_are_refused_and_memory_stays_bounded(
    server: DialbackProcess,
) -> None:
    assert server.proc is not None
    rss_before = _rss_mb(server.proc.pid)
    block = b"X-Big: " + b"a" * (8 << 20)  # 8 MB, and the header block never ends

    async def flood(port: int) -> bytes | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        try:
            for i in range(0, len(block), 64 * 1024):
                writer.write(block[i : i + 64 * 1024])
                await asyncio.wait_for(writer.drain(), 3)
        except (ConnectionError, TimeoutError):
            pass
        answer = await _read_until_closed(reader, 3)
        writer.close()
        return answer

    async def attack() -> list[bytes | None]:
        ports = [server.public_port, server.internal_port] * 3
        return await asyncio.gather(*(flood(p) for p in ports))

    before = _refusals(server)
    answers = asyncio.run(attack())
    grown = _rss_mb(server.proc.pid) - rss_before
    for answer in answers:
        assert answer is not None, "an 8 MB unterminated header block was still being read"
        assert _status(answer) == 431, answer[:200]
        status = _envelope(answer)
        assert status["message"] == f"request headers exceed the limit of {MAX_HEADER_BYTES} bytes"
    assert grown < 12, f"RSS grew {grown:.1f} MiB for 6 x 8 MB of refused headers"
    after = _refusals(server)
    for listener in ("public", "internal"):
        key = (listener, "header_too_large")
        assert after[key] - before[key] == 3, (listener, before, after)


def test_an_idle_keepalive_connection_is_closed_after_the_idle_timeout(
    server: DialbackProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", server.internal_port), timeout=10) as s:
        s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_response(s)
        assert _status(answer) == 200 and b"connection: close" not in answer.lower()
        idle_since = time.monotonic()
        assert s.recv(100) == b""
        idle = time.monotonic() - idle_since
    assert KEEPALIVE_TIMEOUT - 0.2 <= idle <= KEEPALIVE_TIMEOUT + MARGIN, idle


def test_headers_up_to_the_limit_work_and_one_block_over_it_is_431(
    server: DialbackProcess,
) -> None:
    url = f"{server.public_url}/engagement/v3/callbacks/create"
    body = {
        "serviceName": "demo",
        "phoneNumber": "+14155550123",
        "userData": {f"k{i}": "x" * 4000 for i in range(3)},
    }
    # httpx adds ~200 bytes of its own headers: 12 KB of padding stays within 16 KiB.
    allowed = {"x-api-key": API_KEY, "x-pad": "p" * 12_000}
    r = httpx.post(url, json=body, headers=allowed, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["id"]

    with socket.create_connection(("127.0.0.1", server.public_port), timeout=10) as s:
        s.sendall(
            b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Pad: "
            + b"p" * MAX_HEADER_BYTES
            + b"\r\n\r\n"
        )
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert _status(answer) == 431, answer[:200]
    assert _envelope(answer)["code"] == 431
    assert httpx.post(url, json=body, headers={"x-api-key": API_KEY}, timeout=10).status_code == 200


def test_connections_over_the_cap_are_answered_503(server: DialbackProcess) -> None:
    url = f"{server.internal_url}/health/live"
    idle = [
        socket.create_connection(("127.0.0.1", server.internal_port), timeout=10)
        for _ in range(MAX_CONNECTIONS)
    ]
    try:
        time.sleep(0.2)
        assert httpx.get(url, timeout=5).status_code == 503
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 5
    while httpx.get(url, timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the cap did not free up"
        time.sleep(0.1)


def test_a_body_in_the_same_packet_as_headers_near_the_cap_and_pipelining_still_work(
    server: DialbackProcess,
) -> None:
    body = orjson.dumps(
        {
            "serviceName": "demo",
            "phoneNumber": "+14155550124",
            "userData": {f"k{i}": "y" * 4000 for i in range(3)},
        }
    )
    head = (
        "POST /engagement/v3/callbacks/create HTTP/1.1\r\nHost: x\r\n"
        f"x-api-key: {API_KEY}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-pad: {'p' * (MAX_HEADER_BYTES - 400)}\r\n\r\n"
    ).encode()
    assert MAX_HEADER_BYTES - 300 < len(head) <= MAX_HEADER_BYTES
    live = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.public_port), timeout=10) as s:
        s.sendall(head + body)  # one write: the body crosses the header budget's end
        answer = _read_response(s)
        assert _status(answer) == 200, answer[:300]
    with socket.create_connection(("127.0.0.1", server.internal_port), timeout=10) as s:
        s.sendall(live * 3)  # pipelined
        got = b""
        while got.count(b"HTTP/1.1 200") < 3:
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk


def _uncaught(server: DialbackProcess) -> float:
    text = httpx.get(f"{server.internal_url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("UNCAUGHT_EXCEPTION") and not line.startswith("#")
    )


def test_a_body_dribbled_a_byte_at_a_time_is_cut_at_the_body_timeout(
    server: DialbackProcess,
) -> None:
    uncaught_before = _uncaught(server)
    before = _refusals(server)
    body = b'{"serviceName":"demo","phoneNumber":"+14155550125"}'

    async def dribbler() -> tuple[float, bytes | None]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.public_port)
        writer.write(
            b"POST /engagement/v3/callbacks/create HTTP/1.1\r\nHost: x\r\n"
            + f"x-api-key: {API_KEY}\r\ncontent-type: application/json\r\n".encode()
            + f"content-length: {len(body)}\r\n\r\n".encode()
        )
        started = time.monotonic()

        async def dribble() -> None:
            for b in body:
                await asyncio.sleep(0.2)
                writer.write(bytes([b]))

        feeding = asyncio.create_task(dribble())
        answer = await _read_until_closed(reader, BODY_TIMEOUT + MARGIN + 2)
        feeding.cancel()
        writer.close()
        return time.monotonic() - started, answer

    async def attack() -> list[tuple[float, bytes | None]]:
        return await asyncio.gather(*(dribbler() for _ in range(10)))

    for elapsed, answer in asyncio.run(attack()):
        assert answer is not None, "a connection dribbling its body is still open"
        assert BODY_TIMEOUT - 0.2 <= elapsed <= BODY_TIMEOUT + MARGIN, elapsed
        assert _status(answer) == 408, answer
        assert "request body not complete within 1.5 seconds" in str(_envelope(answer)["message"])
    time.sleep(0.3)
    assert _uncaught(server) == uncaught_before, "a cut body was counted as a bug"
    after = _refusals(server)
    assert after[("public", "body_timeout")] - before[("public", "body_timeout")] == 10

"""The throwaway servers leave nothing behind: stopped by PID, their directories removed."""

from __future__ import annotations

import os

from testbed.servers import PostgresServer, RedisServer


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_discarded_redis_leaves_no_process_and_no_directory() -> None:
    server = RedisServer().start()
    assert server.pid is not None and _running(server.pid) and server.dir.is_dir()
    pid = server.pid
    server.discard()
    assert not _running(pid)
    assert not server.dir.exists()


def test_a_discarded_postgres_leaves_no_directory() -> None:
    server = PostgresServer().start()
    pid = int((server.dir / "data" / "postmaster.pid").read_text().splitlines()[0])
    assert _running(pid)
    server.discard()
    assert not _running(pid)
    assert not server.dir.exists()

"""Throwaway PostgreSQL and Redis servers on free loopback ports, stopped by PID.

A missing binary fails the test run with the command that installs it; nothing is skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = (
    "apt-get update && apt-get install -y --no-install-recommends postgresql redis-server"
)


# Every server this process made: whatever a test or a bench run left running or on disk is
# stopped and removed at exit.
_made: list[RedisServer | PostgresServer] = []


@atexit.register
def _discard_all() -> None:
    for server in _made:
        with contextlib.suppress(Exception):
            server.discard()


class MissingTool(RuntimeError):
    """A server binary the suite needs is not installed."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise MissingTool(
            f"PostgreSQL server binary {name!r} not found; install it with: {INSTALL_HINT}"
        )
    return found[-1]


def _read_pid(pidfile: Path, timeout: float = 5.0) -> int:
    """The PID in ``pidfile`` once its writer has finished it (it may exist empty at first)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pidfile.read_text().splitlines()[0])
        if time.monotonic() > deadline:
            raise TimeoutError(f"no PID in {pidfile} after {timeout}s")
        time.sleep(0.01)


@dataclass
class RedisServer:
    """One redis-server process without persistence."""

    port: int = field(default_factory=free_port)
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dialback-redis-")))
    pid: int | None = None

    def __post_init__(self) -> None:
        _made.append(self)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if not exe:
            raise MissingTool(f"redis-server not found; install it with: {INSTALL_HINT}")
        pidfile = self.dir / "redis.pid"
        pidfile.unlink(missing_ok=True)
        subprocess.run(
            [
                exe,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--pidfile",
                str(pidfile),
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            check=True,
        )
        wait_port(self.port)
        self.pid = _read_pid(pidfile)
        return self

    def stop(self) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        self.pid = None

    def discard(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in a temporary directory (run as ``postgres`` when root)."""

    port: int = field(default_factory=free_port)
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dialback-pg-")))
    # More server settings, as ``-c name=value`` options (e.g. a profile's pg_stat_statements).
    extra_options: str = ""

    def __post_init__(self) -> None:
        _made.append(self)

    def _as_owner(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return args

    @property
    def base_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _options(self) -> str:
        # The same on every start: recovery refuses a max_connections lower than before.
        return (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c max_connections=300 -c shared_buffers=128MB {self.extra_options}"
        ).rstrip()

    def url(self, db: str) -> str:
        return f"{self.base_url}/{db}"

    def start(self) -> PostgresServer:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise MissingTool(
                    f"no 'postgres' user; install PostgreSQL with: {INSTALL_HINT}"
                ) from exc
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = self.dir / "data"
        subprocess.run(
            self._as_owner(
                [
                    initdb,
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            self._as_owner(
                [
                    pg_ctl,
                    "-D",
                    str(data),
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "-o",
                    self._options(),
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self

    def restart(self) -> PostgresServer:
        """Start the stopped cluster again on the same port."""
        subprocess.run(
            self._as_owner(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.dir / "data"),
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "-o",
                    self._options(),
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self

    def stop(self, mode: str = "immediate") -> None:
        """Stop the cluster as ``pg_ctl stop -m immediate`` (SIGQUIT: backends die at once) or
        ``-m fast`` (SIGINT: each session is told 57P01 "terminating connection due to
        administrator command" and its transaction rolled back)."""
        data = self.dir / "data"
        pidfile = data / "postmaster.pid"
        if pidfile.exists():
            pid = _read_pid(pidfile)
            try:
                os.kill(pid, signal.SIGINT if mode == "fast" else signal.SIGQUIT)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)

    def _processes(self) -> list[int]:
        """The postmaster's PID and its children's (backends, checkpointer, ...)."""
        pidfile = self.dir / "data" / "postmaster.pid"
        if not pidfile.exists():
            return []
        pid = _read_pid(pidfile)
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # The command name (field 2) may hold spaces: the PPID follows its ')'.
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(stat.parent.name))
        return [pid, *children]

    def freeze(self) -> None:
        """SIGSTOP every process of the cluster: connections open but nothing answers (a hung
        host or a stalled disk, as the client sees it). Undo with ``thaw``."""
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT every process of a frozen cluster."""
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def start_held_in_startup(self) -> PostgresServer:
        """Start the stopped cluster and keep it *starting up* until ``release_startup``: every
        connection meanwhile is refused with "the database system is starting up" (SQLSTATE
        57P03), as during crash recovery after a restart.

        Archive recovery (``recovery.signal``) asks ``restore_command`` for WAL before the
        server reaches any state that accepts connections; the command waits for a file.
        """
        data = self.dir / "data"
        release = self.dir / "release-startup"
        release.unlink(missing_ok=True)
        (data / "recovery.signal").touch()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(data / "recovery.signal", pw.pw_uid, pw.pw_gid)
        wait = f"while [ ! -e {release} ]; do sleep 0.05; done; false"
        subprocess.run(
            self._as_owner(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(self.dir / "log"),
                    "-W",  # no wait: it will not accept connections until released
                    "-o",
                    self._options() + f' -c "restore_command={wait}"',
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self

    def release_startup(self, timeout: float = 15.0) -> None:
        """Let a cluster held by ``start_held_in_startup`` finish recovery and open."""
        (self.dir / "release-startup").touch()
        deadline = time.monotonic() + timeout
        while True:
            # Open for writes: archive recovery passes through a read-only phase first.
            ready = subprocess.run(
                [
                    "psql",
                    *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"),
                    *("-tAc", "SELECT pg_is_in_recovery()"),
                ],
                check=False,
                capture_output=True,
                text=True,
            )
            if ready.stdout.strip() == "f":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL still not accepting connections after {timeout}s")
            time.sleep(0.05)

    def discard(self) -> None:
        """Stop the cluster and remove its directory (data and log)."""
        with contextlib.suppress(Exception):
            self.thaw()  # a frozen postmaster would not see the stop signal
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql: str, db: str = "postgres") -> None:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                sql,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

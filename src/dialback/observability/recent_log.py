"""What this replica remembers of its own trouble: a bounded in-memory ring of the last warnings
and errors it logged, each as the log formatter writes it (phone numbers masked, no userData,
no database values) with its corrId, for the Callback UI's Developer page.

One ring per process (a logging handler on the root logger, like the stdout handler): it holds
what this process logged at warn and above, at the current level, since it started; nothing
of other replicas, nothing below warn.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from dialback.observability.logging import (
    LEVEL_NAMES,
    JsonFormatter,
    RequestLine,
    RequestLineSink,
    masked_context,
    set_request_line_sink,
)

CAPACITY = 500
"""How many records the ring keeps (the oldest go first)."""
_MSG_CHARS = 2000
_FIELDS = ("tenant", "tenantId", "callbackId", "actor", "route", "status")


@dataclass(frozen=True)
class RecentRecord:
    """One warning or error as it was logged (already scrubbed)."""

    at: float
    level: str
    logger: str
    message: str
    corr_id: str
    fields: Mapping[str, str]

    @property
    def tenant(self) -> str:
        """The tenant's name the line was bound to, or ""."""
        return self.fields.get("tenant", "")


class RecentLog(RequestLineSink):
    """The ring: a logging handler at warn that keeps the last ``capacity`` records."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__(logging.WARNING)
        self.capacity = capacity
        self._records: deque[RecentRecord] = deque(maxlen=capacity)
        self._scrub = JsonFormatter(max_len=1 << 16)
        self._guard = threading.Lock()
        self.kept = 0
        """How many records it has been given since the process started."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            ev = self._scrub.event(record)
        except Exception:  # a record that cannot be formatted is the stdout handler's to report
            return
        self._keep(record.created, ev)

    def keep_request_line(self, line: RequestLine) -> None:
        """A request line written past ``logging`` (``logging.log_request_lines``' fast path),
        with the fields its JSON line has."""
        created, level, method, route, status, ms, corr, context = line
        ev: dict[str, object] = {
            "level": LEVEL_NAMES.get(level, "error"),
            "logger": "dialback.request",
            "msg": f"{method} {route} {status} {ms:.1f}ms",
            **masked_context(context),
            "route": route,
            "status": status,
            "corrId": corr,
        }
        self._keep(created, ev)

    def _keep(self, created: float, ev: Mapping[str, object]) -> None:
        msg = str(ev.get("msg", ""))
        if len(msg) > _MSG_CHARS:
            # A traceback's last lines name the exception: keep the head and the tail.
            head = _MSG_CHARS // 3
            msg = msg[:head] + "\n…\n" + msg[-(_MSG_CHARS - head) :]
        kept = RecentRecord(
            at=created,
            level=str(ev.get("level", "")),
            logger=str(ev.get("logger", "")),
            message=msg,
            corr_id=str(ev.get("corrId", "")),
            fields={k: str(ev[k])[:200] for k in _FIELDS if k in ev},
        )
        with self._guard:
            self._records.append(kept)
            self.kept += 1

    def records(
        self, scope: frozenset[str] | None = None, corr_id: str | None = None
    ) -> list[RecentRecord]:
        """The records held, newest first: with ``corr_id`` only (None: any); for a scoped
        reader (``scope``: its tenants' names) only those bound to one of its tenants."""
        with self._guard:
            held = list(reversed(self._records))
        return [
            r
            for r in held
            if (corr_id is None or r.corr_id == corr_id) and (scope is None or r.tenant in scope)
        ]

    def oldest(self) -> float | None:
        """When the oldest record held was logged."""
        with self._guard:
            return self._records[0].at if self._records else None

    def held(self) -> int:
        """How many records it holds now (at most ``capacity``)."""
        return len(self._records)

    def clear(self) -> None:
        """Forget every record (tests)."""
        with self._guard:
            self._records.clear()


_RECENT: RecentLog | None = None


def recent_log() -> RecentLog:
    """This process's ring, installed on the root logger (once; again after ``setup_logging``
    replaced the root's handlers)."""
    global _RECENT
    if _RECENT is None:
        _RECENT = RecentLog()
    root = logging.getLogger()
    if _RECENT not in root.handlers:
        root.addHandler(_RECENT)
    set_request_line_sink(_RECENT)
    return _RECENT

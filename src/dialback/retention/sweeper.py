"""The retention loop, one per replica: a sweep every interval (jittered), supervised.

A sweep that fails (a dependency down, a bug) is logged and retried at the next interval; a
dependency failure is expected, anything else counts UNCAUGHT_EXCEPTION. The loop itself runs
until ``stop``: one that ends otherwise has died of a bug, which the supervisor reports as
``failed`` (counted UNCAUGHT_EXCEPTION; liveness then fails, so the replica is restarted).
Sweeps in several replicas at once are harmless: each batch deletes what is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from dialback.kit.errors import is_dependency_error
from dialback.observability.events import Events
from dialback.retention.service import RetentionService

log = logging.getLogger("dialback.retention")

_STOP_TIMEOUT_SECONDS = 10.0


class RetentionSweeper:
    """Runs ``RetentionService.sweep`` every ``interval`` seconds until stopped."""

    def __init__(
        self,
        service: RetentionService,
        events: Events,
        interval: float,
        *,
        first_delay: float | None = None,
    ) -> None:
        self.service = service
        self.events = events
        self.interval = interval
        # Replicas started together do not sweep in step.
        self.first_delay = (
            random.uniform(0.1, 0.5) * interval if first_delay is None else first_delay
        )
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        # The name of the loop when it died; None while healthy.
        self.failed: str | None = None
        self.sweeps = 0

    @property
    def healthy(self) -> bool:
        """False once the loop has died."""
        return self.failed is None

    def start(self) -> None:
        """Start the loop under a supervisor."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="retention-sweeper")
        self._supervisor = asyncio.create_task(self._supervise(), name="retention-supervisor")

    async def _supervise(self) -> None:
        assert self._task is not None
        await asyncio.wait([self._task])
        if self._stopping.is_set():
            return
        exc = None if self._task.cancelled() else self._task.exception()
        self.failed = self._task.get_name()
        log.error("retention loop died", exc_info=exc)
        self.events.uncaught_exception("retention")

    async def stop(self) -> None:
        """Stop the loop, letting a batch in flight finish within a bound."""
        self._stopping.set()
        tasks = [t for t in (self._task, self._supervisor) if t is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT_SECONDS)
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._supervisor = None

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def sweep_once(self) -> None:
        """One sweep; a failure is logged (and counted unless a dependency is down)."""
        try:
            report = await self.service.sweep(self._stopping.is_set)
        except Exception as exc:
            if is_dependency_error(exc):
                log.warning("retention sweep failed: %s: %s", type(exc).__name__, exc)
            else:
                log.error("retention sweep failed", exc_info=exc)
                self.events.uncaught_exception("retention")
            return
        self.sweeps += 1
        removed = {k: v for k, v in report.counts.items() if v}
        if removed:
            log.info("retention sweep removed %s", removed, extra={"removed": removed})

    async def _loop(self) -> None:
        await self._sleep(self.first_delay)
        while not self._stopping.is_set():
            await self.sweep_once()
            await self._sleep(self.interval * random.uniform(0.9, 1.1))

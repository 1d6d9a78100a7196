"""Event-loop lag: how late a timer fires on the asyncio loop."""

from __future__ import annotations

import asyncio
import time

from dialback.observability.events import Events


class LoopLagMonitor:
    """Samples lag every ``interval`` seconds into a gauge and a histogram."""

    def __init__(self, events: Events, interval: float = 0.5) -> None:
        self.events = events
        self.interval = interval
        self.last_tick = time.monotonic()
        self.last_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling."""
        self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - start - self.interval)
            self.last_lag = lag
            self.last_tick = time.monotonic()
            self.events.loop_lag(lag)

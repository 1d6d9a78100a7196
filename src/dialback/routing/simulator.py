"""A reference routing engine: agents, ringing customers, outcomes on the outcome stream.

It consumes the dispatch stream through its own consumer group, like a real dialer would,
and drives the demo, the end-to-end tests and the benchmarks. It keeps the contract of
docs/routing.md: a republished attempt it holds is not queued twice, one it finished has its
outcome reported again, and a routing Redis that lost its groups is provisioned again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import OrderedDict

from dialback.routing.messages import Outcome
from dialback.routing.transport import RoutingTransport

log = logging.getLogger("dialback.simulator")


class RoutingSimulator:
    """N simulated agents; customers answer with probability ``answer_probability``."""

    def __init__(
        self,
        transport: RoutingTransport,
        *,
        agents: int = 5,
        handle_seconds: float = 2.0,
        ring_seconds: float = 0.5,
        answer_probability: float = 0.9,
        busy_share: float = 0.3,
        consumer: str = "sim-1",
        seed: int | None = None,
        emit_retry_seconds: float = 300.0,
        remember: int = 100_000,
    ) -> None:
        self.transport = transport
        self.agents = agents
        self.handle_seconds = handle_seconds
        self.ring_seconds = ring_seconds
        self.answer_probability = answer_probability
        self.busy_share = busy_share
        self.consumer = consumer
        self.rng = random.Random(seed)
        self._queue: asyncio.PriorityQueue[tuple[int, int, dict[str, str]]] = (
            asyncio.PriorityQueue()
        )
        self._cancelled: set[tuple[str, str]] = set()
        # (id, attempt) queued or with an agent, and the final outcome of those finished
        # (the last ``remember``): a republish is deduplicated, or answered with the outcome.
        self._held: set[tuple[str, str]] = set()
        self._finished: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._remember = remember
        self._re_emits: set[asyncio.Task[bool]] = set()
        # How long an outcome is retried while the routing Redis is unreachable; past it,
        # dialback's deadlines end the attempt (docs/routing.md#deadlines).
        self.emit_retry_seconds = emit_retry_seconds
        self._seq = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.handled = 0

    def start(self) -> None:
        """Start the reader and the agents."""
        self._tasks = [
            asyncio.create_task(self._reader(), name="sim-reader"),
            asyncio.create_task(self._heartbeat(), name="sim-heartbeat"),
        ]
        self._tasks += [
            asyncio.create_task(self._agent(i), name=f"sim-agent-{i}") for i in range(self.agents)
        ]

    async def stop(self) -> None:
        """Stop reading and let agents go."""
        self._stopping.set()
        tasks = [*self._tasks, *self._re_emits]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    async def run_forever(self) -> None:
        """Run until cancelled (the ``dialback router-sim`` command)."""
        self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def _heartbeat(self, every: float = 2.0) -> None:
        while not self._stopping.is_set():
            try:
                await self.transport.heartbeat(self.consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("heartbeat failed: %s", exc)
            await asyncio.sleep(every)

    async def _reader(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.transport.ensure_groups(provisioner=False)
                break
            except Exception:
                log.warning("routing stream not reachable yet", exc_info=True)
                await asyncio.sleep(1.0)
        while not self._stopping.is_set():
            try:
                entries = await self.transport.read_dispatches(self.consumer, 100, 1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading the dispatch stream failed: %s", exc)
                await asyncio.sleep(1.0)
                # The routing Redis may have restarted empty: recreate the groups.
                try:
                    await self.transport.ensure_groups(provisioner=False)
                except Exception:
                    log.debug("ensure_groups failed", exc_info=True)
                continue
            for _eid, fields in entries:
                key = (fields.get("id", ""), fields.get("attempt", ""))
                if fields.get("type") == "cancel":
                    self._cancelled.add(key)
                    continue
                if key in self._held:
                    continue  # a republish of an attempt in hand
                reason = self._finished.get(key)
                if reason is not None:
                    # A republish of a finished attempt: its outcome was lost, report it again.
                    self._spawn_emit(fields, reason)
                    continue
                self._held.add(key)
                try:
                    prio = int(fields.get("priority", "0"))
                except ValueError:
                    prio = 0
                self._queue.put_nowait((-prio, next(self._seq), fields))
            await self.transport.ack_dispatches([eid for eid, _ in entries])

    def _spawn_emit(self, fields: dict[str, str], reason: str) -> None:
        task = asyncio.create_task(self._emit(fields, "COMPLETED", reason), name="sim-re-emit")
        self._re_emits.add(task)
        task.add_done_callback(self._re_emits.discard)

    async def _emit(self, fields: dict[str, str], event: str, reason: str | None = None) -> bool:
        """Report an outcome, retrying (0.1 s, 0.5 s, 1 s, 2 s, then every 5 s) for up to
        ``emit_retry_seconds``; False when it gave up."""
        outcome = Outcome(fields["id"], int(fields["attempt"]), event, reason, time.time())
        give_up = time.monotonic() + self.emit_retry_seconds
        delays = iter((0.1, 0.5, 1.0, 2.0))
        while True:
            try:
                await self.transport.emit_outcome(outcome)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = next(delays, 5.0)
                if time.monotonic() + delay > give_up:
                    log.error(
                        "emitting an outcome failed for %.0f s; giving up: %s",
                        self.emit_retry_seconds,
                        exc,
                    )
                    return False
                log.warning("emitting an outcome failed; retrying in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)

    def _finish(self, key: tuple[str, str], reason: str) -> None:
        self._held.discard(key)
        self._finished[key] = reason
        if len(self._finished) > self._remember:
            self._finished.popitem(last=False)

    async def _agent(self, _n: int) -> None:
        while True:
            _p, _s, fields = await self._queue.get()
            key = (fields.get("id", ""), fields.get("attempt", ""))
            if key in self._cancelled:
                self._cancelled.discard(key)
                self._held.discard(key)
                continue
            await self._emit(fields, "ROUTING")
            await asyncio.sleep(self.ring_seconds)
            if self.rng.random() < self.answer_probability:
                await self._emit(fields, "PROCESSING")
                await asyncio.sleep(self.handle_seconds * self.rng.uniform(0.5, 1.5))
                reason = "answered"
            else:
                reason = "busy" if self.rng.random() < self.busy_share else "no-answer"
            self._finish(key, reason)
            await self._emit(fields, "COMPLETED", reason)
            self.handled += 1

"""The deadline sweep: no routed attempt stays QUEUED, ROUTING or PROCESSING for ever.

A supervised loop of the monitor (one per replica). Every ``deadline_sweep_seconds`` it

- checks that the routing Redis still has the streams and consumer groups dialback
  provisioned; a routing Redis that restarted empty (or was flushed) is provisioned again and
  counted in ``ges_routing_stream_losses_total``;
- locks a small batch of routed callbacks past a deadline (other replicas' sweeps skip them)
  and applies what ``callbacks.lifecycle.deadline`` decides: the same attempt published again
  (a dispatch entry with ``republish`` n, past the transport's once-per-attempt key), the
  attempt ended with reason ``timeout`` (retried or completed), or a QUEUED attempt held until
  its next deadline. Each is counted in ``ges_deadline_actions_total``.

The republishes are published before the transaction that records them commits: a failed
publish (the routing Redis is down) changes nothing and the next sweep tries again, and a
crash after the publish makes the next sweep publish the same republish number, which the
transport's key for that number turns into a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.callbacks import repository as repo
from dialback.callbacks.lifecycle import Deadlines, Lifecycle, Transition
from dialback.kit.context import bound, corr_scope, new_corr_id
from dialback.kit.errors import is_dependency_error
from dialback.observability.events import Events
from dialback.routing.cancels import announce_cancel
from dialback.routing.messages import Dispatch
from dialback.routing.transport import RoutingTransport
from dialback.settings import Settings

log = logging.getLogger("dialback.monitor.deadlines")

# The stream entry of a callback (``monitor.dispatch_fields``): (row, outcome stream, now).
FieldsFor = Callable[[repo.Claimed, str, float], dict[str, str]]
# Longest a sweep's publish may hold its locked rows (outcomes for them wait meanwhile).
_PUBLISH_TIMEOUT_SECONDS = 10.0


def deadlines_from(settings: Settings) -> Deadlines:
    """The routed states' deadlines as configured."""
    s = settings
    return Deadlines(
        queued_republish=s.queued_republish_seconds,
        max_republishes=s.queued_max_republishes,
        queued_timeout=s.queued_timeout_seconds,
        routing_timeout=s.routing_timeout_seconds,
        processing_timeout=s.processing_timeout_seconds,
    )


def _action(t: Transition) -> str | None:
    if t.republish is not None:
        return "republished"
    if t.to_state == "SCHEDULED":
        return "retried"
    if t.to_state == "COMPLETED":
        return "completed"
    return None  # a QUEUED attempt held until its next deadline


class DeadlineSweeper:
    """Republishes unacknowledged QUEUED attempts and ends routed attempts past a deadline."""

    def __init__(
        self,
        engine: AsyncEngine,
        transport: RoutingTransport,
        lifecycle: Lifecycle,
        events: Events,
        settings: Settings,
        fields_for: FieldsFor,
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.lifecycle = lifecycle
        self.events = events
        self.settings = settings
        self.fields_for = fields_for
        self.limits = deadlines_from(settings)
        self._losses_reported = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Sweep until ``stopping`` is set; failures are logged and retried next sweep."""
        batch = self.settings.deadline_batch_size
        while not stopping.is_set():
            try:
                await self.check_streams()
            except Exception as exc:
                # An unreachable routing Redis is ORS_REDIS_STATUS's business.
                log.debug("routing stream check failed: %s: %s", type(exc).__name__, exc)
            try:
                while await self.sweep_once() >= batch and not stopping.is_set():
                    pass
            except Exception as exc:
                if is_dependency_error(exc):
                    log.warning("deadline sweep failed: %s: %s", type(exc).__name__, exc)
                else:
                    log.error("deadline sweep failed", exc_info=exc)
                    self.events.uncaught_exception("monitor")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.deadline_sweep_seconds)

    async def check_streams(self) -> None:
        """Provision the routing streams and groups again if they were lost; count each loss
        (whoever found it: this sweep, or the outcome loop's NOGROUP)."""
        if not await self.transport.intact():
            try:
                await self.transport.ensure_groups()
            except Exception:
                self.events.provisioning_failed()
                raise
        found = self.transport.losses_detected
        while self._losses_reported < found:
            self._losses_reported += 1
            self.events.routing_stream_lost()
            log.warning(
                "the routing Redis had lost its streams or consumer groups (restarted empty?); "
                "provisioned them again: QUEUED attempts whose entries were lost are "
                "republished by their deadline"
            )

    async def sweep_once(self, now: float | None = None) -> int:
        """One batch: lock routed callbacks past a deadline and act on each; how many acted.
        The batch is one step with its own corrId (its log lines and history rows)."""
        with corr_scope(new_corr_id()):
            return await self._sweep(time.time() if now is None else now)

    async def _sweep(self, now: float) -> int:
        s = self.settings
        cutoffs = repo.DeadlineCutoffs(
            now,
            queued=now - s.queued_republish_seconds,
            routing=now - s.routing_timeout_seconds,
            processing=now - s.processing_timeout_seconds,
        )
        decided: list[tuple[Any, Transition]] = []
        async with self.engine.begin() as conn:
            rows = await repo.lock_overdue(conn, cutoffs, s.deadline_batch_size)
            if not rows:
                return 0
            counts = await repo.republish_counts(conn, [r for r in rows if r.state == "QUEUED"])
            dispatches: list[Dispatch] = []
            for row in rows:
                done = counts.get((row.id, row.attempt), 0)
                t = await self.lifecycle.deadline(row, now, self.limits, done)
                if t is not None and t.republish is not None:
                    dispatch = self._dispatch(row, t.republish, now)
                    if dispatch is None:
                        # Its entry cannot be built: republish no more, wait for the timeout.
                        t = await self.lifecycle.deadline(row, now, self.limits, 1 << 30)
                    else:
                        dispatches.append(dispatch)
                if t is not None:
                    decided.append((row, t))
            if dispatches:
                await asyncio.wait_for(
                    self.transport.publish(dispatches), timeout=_PUBLISH_TIMEOUT_SECONDS
                )
            for row, t in decided:
                await repo.apply(conn, row, t)
        await self._after_commit(decided)
        return len(decided)

    def _dispatch(self, row: Any, republish: int, now: float) -> Dispatch | None:
        try:
            fields = self.fields_for(repo.claimed_from(row), self.settings.outcome_stream, now)
        except Exception:
            with bound(tenantId=row.tenant_id, callbackId=row.id):
                log.warning("cannot build the dispatch entry of a QUEUED callback to republish")
            return None
        fields["republish"] = str(republish)
        return Dispatch(row.id, row.attempt, fields, republish)

    async def _after_commit(self, decided: list[tuple[Any, Transition]]) -> None:
        """Count and log what was done; tell the routing engine to drop ended attempts."""
        for row, t in decided:
            action = _action(t)
            if action is None:
                continue
            self.events.deadline_acted(t.from_state, action)
            for reason in t.outcomes:
                self.events.outcome(row.tenant_id, reason)
            with bound(tenantId=row.tenant_id, callbackId=row.id):
                if t.republish is not None:
                    log.info(
                        "QUEUED attempt %d not acknowledged by the routing engine: republished",
                        row.attempt,
                        extra={"attempt": row.attempt, "republish": t.republish},
                    )
                else:
                    log.warning(
                        "%s attempt %d outlived its deadline: ended (timeout)%s",
                        t.from_state,
                        row.attempt,
                        "; retried" if t.retry_in is not None else "",
                        extra={"attempt": row.attempt, "reason": "timeout"},
                    )
            if t.notify_routing:
                await announce_cancel(self.transport, self.events, row.id, row.attempt)

"""The callback monitor loop, one per replica.

Dispatch: claim due callbacks under a lease, publish each (callback, attempt) once, mark them
QUEUED. A crash between claim and mark leaves leases that expire and are reclaimed; the
transport's once-per-attempt publish makes the retry harmless.

Outcomes: read routing events through a consumer group, apply them in order of the state
machine, retry unanswered attempts by the service's policy, and acknowledge after commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import orjson

from dialback.callbacks import repository as cb_repo
from dialback.monitor import repository as repo
from dialback.observability.health import is_dependency_error
from dialback.observability.logging import TRACE, bound
from dialback.routing.messages import Dispatch, Outcome

if TYPE_CHECKING:
    from dialback.runtime import Runtime

log = logging.getLogger("dialback.monitor")

_RANK = {"SCHEDULED": 0, "QUEUED": 1, "ROUTING": 2, "PROCESSING": 3, "COMPLETED": 4}


def dispatch_fields(row: Any, outcome_stream: str, now: float) -> dict[str, str]:
    """The stream entry for one claimed callback (schema in docs/routing.md)."""
    from dialback.services.rules import utc_iso

    return {
        "type": "callback",
        "id": row.id,
        "attempt": str(row.attempt),
        "tenant": row.tenant_id,
        "service": row.service_name,
        "phoneNumber": row.phone_number,
        "priority": str(row.priority),
        "language": row.language,
        "desiredTime": utc_iso(row.desired_time) if row.desired_time else "",
        "dueTime": utc_iso(row.due_at),
        "publishedAt": utc_iso(now),
        "userData": orjson.dumps(row.user_data or {}).decode(),
        "outcomeStream": outcome_stream,
    }


class CallbackMonitor:
    """Dispatches due callbacks and applies outcomes; safe to run in every replica."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.owner = rt.instance_id
        self.settings = rt.settings
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.last_cycle_at = 0.0
        self.last_cycle_seconds = 0.0
        self.dispatched_total = 0

    def wake(self) -> None:
        """Ask for a dispatch cycle now (an immediate callback was booked)."""
        self._wake.set()

    def start(self) -> None:
        """Start the dispatch and outcome loops."""
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="monitor-dispatch"),
            asyncio.create_task(self._outcome_loop(), name="monitor-outcomes"),
            asyncio.create_task(self._stats_loop(), name="monitor-stats"),
        ]

    async def stop(self) -> None:
        """Stop both loops, letting an in-flight cycle finish."""
        self._stopping.set()
        self._wake.set()
        for t in self._tasks:
            try:
                await asyncio.wait_for(t, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                t.cancel()
        self._tasks = []

    async def _dispatch_loop(self) -> None:
        backoff = self.settings.monitor_poll_seconds
        while not self._stopping.is_set():
            self._wake.clear()
            started = time.monotonic()
            try:
                n = await self.dispatch_once()
                backoff = self.settings.monitor_poll_seconds
            except Exception as exc:
                if is_dependency_error(exc):
                    log.warning("dispatch cycle failed: %s: %s", type(exc).__name__, exc)
                else:
                    log.exception("dispatch cycle failed")
                    self.rt.events.uncaught_exception("monitor")
                n = 0
                backoff = min(backoff * 2, 5.0)
            self.last_cycle_seconds = time.monotonic() - started
            self.last_cycle_at = time.time()
            self.rt.events.monitor_cycle(self.last_cycle_seconds)
            if n >= self.settings.monitor_batch_size:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass

    async def dispatch_once(self) -> int:
        """One cycle: claim, publish, mark. Returns how many were claimed."""
        now = time.time()
        async with self.rt.engine.begin() as conn:
            claimed = await repo.claim_due(
                conn,
                self.owner,
                now,
                self.settings.monitor_lease_seconds,
                self.settings.monitor_batch_size,
            )
        if not claimed:
            return 0
        trace = log.isEnabledFor(TRACE)
        if trace:
            for r in claimed:
                with bound(tenantId=r.tenant_id, callbackId=r.id):
                    log.log(TRACE, "monitor: claimed due callback", extra={"attempt": r.attempt})
        publish_time = time.time()
        dispatches = [
            Dispatch(r.id, r.attempt, dispatch_fields(r, self.settings.outcome_stream, publish_time))
            for r in claimed
        ]
        try:
            await self.rt.transport.publish(dispatches)
        except Exception:
            self.rt.events.submit_failed(len(claimed))
            async with self.rt.engine.begin() as conn:
                await repo.release_leases(conn, self.owner, [r.id for r in claimed])
            raise
        published_at = time.time()
        if trace:
            for r in claimed:
                with bound(tenantId=r.tenant_id, callbackId=r.id):
                    log.log(
                        TRACE,
                        "monitor: published to the routing stream",
                        extra={"stream": self.settings.routing_stream, "attempt": r.attempt},
                    )
        async with self.rt.engine.begin() as conn:
            await repo.mark_queued(conn, self.owner, claimed, published_at)
        if trace:
            for r in claimed:
                with bound(tenantId=r.tenant_id, callbackId=r.id):
                    log.log(
                        TRACE,
                        "monitor: callback QUEUED",
                        extra={"latenessSeconds": round(published_at - r.due_at, 3)},
                    )
        self.dispatched_total += len(claimed)
        for r in claimed:
            self.rt.events.dispatched(r.tenant_id, published_at - r.due_at)
        return len(claimed)

    async def _outcome_loop(self) -> None:
        transport = self.rt.transport
        while not self._stopping.is_set():
            try:
                await transport.ensure_groups()
                break
            except Exception:
                self.rt.events.provisioning_failed()
                log.warning("cannot create the routing consumer groups yet", exc_info=True)
                await self._sleep(2.0)
        while not self._stopping.is_set():
            try:
                entries = await transport.read_outcomes(self.owner, 200, 500)
                if not entries:
                    continue
                await self.apply_outcomes(entries)
                await transport.ack_outcomes([eid for eid, _ in entries])
            except Exception as exc:
                if is_dependency_error(exc):
                    log.warning("outcome processing failed: %s: %s", type(exc).__name__, exc)
                else:
                    log.exception("outcome processing failed")
                    if "NOGROUP" not in str(exc):
                        self.rt.events.uncaught_exception("monitor")
                await self._sleep(1.0)
                # A routing Redis that restarted empty has lost its groups: provision again.
                try:
                    await transport.ensure_groups()
                except Exception:
                    self.rt.events.provisioning_failed()

    async def _stats_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.refresh_stats()
            except Exception:
                log.debug("monitor statistics refresh failed", exc_info=True)
            await self._sleep(self.settings.monitor_stats_seconds)

    async def refresh_stats(self) -> None:
        """Update the monitor-size, due-backlog and oldest-due gauges from the store."""
        now = time.time()
        async with self.rt.engine.connect() as conn:
            by_state = await repo.count_by_state(conn)
            backlog, oldest = await repo.due_backlog(conn, now)
        m = self.rt.metrics
        for state in ("SCHEDULED", "QUEUED", "ROUTING", "PROCESSING"):
            m.monitor_size.set((state.lower(),), by_state.get(state, 0))
        m.monitor_size.set(("due",), backlog)
        m.f["ges_due_backlog"].set((), backlog)
        m.f["ges_due_oldest_age_seconds"].set(
            (), max(0.0, now - oldest) if oldest is not None else 0
        )

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def apply_outcomes(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Apply a batch of outcome entries in one transaction."""
        now = time.time()
        async with self.rt.engine.begin() as conn:
            for _eid, fields in entries:
                try:
                    outcome = Outcome.parse(fields)
                except ValueError as exc:
                    log.warning("ignoring malformed outcome event: %s", exc)
                    continue
                await self._apply(conn, outcome, now)

    async def _apply(self, conn: Any, o: Outcome, now: float) -> None:
        row = await repo.load_for_outcome(conn, o.id)
        if row is None or row.attempt != o.attempt or row.state == "COMPLETED":
            return
        if _RANK[o.event] <= _RANK[row.state]:
            return
        if row.state == "SCHEDULED":
            # The outcome overtook mark_queued (the attempt was published): record QUEUED first.
            await cb_repo.add_event(
                conn, row.id, now, "SCHEDULED", "QUEUED", None, row.attempt, "monitor"
            )
            row = SimpleNamespace(**{**row._asdict(), "state": "QUEUED"})
        values: dict[str, Any] = {"updated_at": now, "queued_at": row.queued_at or now}
        to_state = o.event
        reason = o.reason
        if o.event == "ROUTING":
            values["routed_at"] = now
        elif o.event == "PROCESSING":
            values["routed_at"] = row.routed_at or now
        else:
            retry = await self._retry_delay(row, o.reason)
            if retry is not None:
                to_state = "SCHEDULED"
                values.update(
                    state="SCHEDULED",
                    attempt=row.attempt + 1,
                    due_at=now + retry,
                    last_reason=o.reason,
                    queued_at=None,
                    routed_at=None,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                await repo.update_callback(conn, row.id, values)
                await cb_repo.add_event(
                    conn, row.id, now, row.state, "COMPLETED", o.reason, row.attempt, "routing"
                )
                await cb_repo.add_event(
                    conn, row.id, now, "COMPLETED", "SCHEDULED", "retry", row.attempt + 1, "monitor"
                )
                self.rt.events.outcome(row.tenant_id, o.reason or "failed")
                self.rt.events.outcome(row.tenant_id, "retry")
                with bound(tenantId=row.tenant_id, callbackId=row.id):
                    log.info(
                        "attempt %d ended %s; retry in %ss",
                        row.attempt,
                        o.reason,
                        int(retry),
                        extra={"attempt": row.attempt, "reason": o.reason},
                    )
                return
            values.update(completed_at=now, reason=o.reason, last_reason=o.reason)
        values["state"] = to_state
        await repo.update_callback(conn, row.id, values)
        await cb_repo.add_event(
            conn, row.id, now, row.state, to_state, reason, row.attempt, "routing"
        )
        if log.isEnabledFor(logging.DEBUG):
            with bound(tenantId=row.tenant_id, callbackId=row.id):
                log.debug(
                    "callback %s -> %s",
                    row.state,
                    to_state,
                    extra={"attempt": row.attempt, "reason": reason},
                )
        if to_state == "COMPLETED":
            self.rt.events.outcome(row.tenant_id, reason or "unknown")

    async def _retry_delay(self, row: Any, reason: str | None) -> float | None:
        if reason in (None, "answered", "cancelled") or row.attempt >= row.max_attempts:
            return None
        svc = await self.rt.services.get(row.tenant_id, row.service_name)
        if svc is None or reason not in svc.config.retry.retry_on:
            return None
        return float(svc.config.retry.delay_seconds)

"""The callback monitor loop, one per replica.

Dispatch: claim due callbacks under a lease, publish each (callback, attempt) once, mark them
QUEUED. A crash between claim and mark leaves leases that expire and are reclaimed; the
transport's once-per-attempt publish makes the retry harmless. While a backlog drains the
stages overlap: the next batch is claimed while the previous one is published and marked.

Outcomes: read routing events through a consumer group, apply what the state machine
(``callbacks.lifecycle``) decides for each, and acknowledge after commit.

corrIds: each claimed batch is one step with its own fresh corrId, carried through its publish
and its mark, so its log lines and the history rows it writes share it; each outcome is applied
under the corrId its entry carries (``corrId``, docs/routing.md), else under one fresh corrId
per batch read.

Supervision: the loops (dispatch, outcomes, statistics, deadlines: ``monitor.deadlines``) run
until ``stop``; one that ends otherwise has died of a bug: the monitor stops, counts
UNCAUGHT_EXCEPTION and reports ``failed`` (liveness then fails, so the replica is restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dialback.callbacks import repository as repo
from dialback.callbacks.lifecycle import Lifecycle, Transition
from dialback.kit.context import bound, corr_scope, new_corr_id
from dialback.kit.errors import is_dependency_error, is_retryable_conflict
from dialback.kit.timefmt import utc_iso
from dialback.monitor.deadlines import DeadlineSweeper
from dialback.observability.events import Events
from dialback.observability.logging import TRACE
from dialback.routing.cancels import announce_cancel
from dialback.routing.messages import DISPATCH_BOOKING_FIELDS, Dispatch, Outcome
from dialback.routing.transport import GroupMissing, RoutingTransport
from dialback.settings import Settings

log = logging.getLogger("dialback.monitor")

# Longest the per-state counts wait while a backlog drains (see _stats_loop).
_STATS_MAX_DEFER_SECONDS = 60.0
# How long ``stop`` waits for the loops to finish their cycle before cancelling them.
_STOP_TIMEOUT_SECONDS = 10.0
# Provisioning the routing consumer groups is retried after 1 s, 2 s, 4 s ... at most 60 s
# apart: a lasting failure counts about six RBAC_CREATE_VQ_PROXY_ERROR in its first half
# minute and one a minute after, so GES's `increase(...[10m]) > 5` fires within ~30 s and
# holds while it lasts (docs/metrics.md).
PROVISION_RETRY_FIRST_SECONDS = 1.0
PROVISION_RETRY_MAX_SECONDS = 60.0
# Reading outcomes from an unreachable routing Redis is retried 1 s, 2 s ... at most 10 s apart.
OUTCOME_RETRY_FIRST_SECONDS = 1.0
OUTCOME_RETRY_MAX_SECONDS = 10.0
# A failed dispatch cycle is retried after 1 s, 2 s, 4 s ... at most this far apart; wakes
# (each booking sends one) do not cut that pause short.
DISPATCH_BACKOFF_MAX_SECONDS = 5.0
# Shortest sleep of an idle cycle waiting for the next due time: when callbacks come due one
# after another, at most 50 cycles a second, each claiming what came due meanwhile.
MIN_IDLE_SLEEP_SECONDS = 0.02
# A transaction that lost a deadlock or a serialization conflict runs again, at most this often.
CONFLICT_RETRIES = 5


def dispatch_fields(
    row: repo.Claimed, outcome_stream: str, now: float, published_at: str | None = None
) -> dict[str, str]:
    """The stream entry for one claimed callback (schema in docs/routing.md)."""
    due = utc_iso(row.due_at)
    desired = row.desired_time
    params = row.params
    fields = {
        "type": "callback",
        "id": row.id,
        "attempt": str(row.attempt),
        "tenant": row.tenant_id,
        "service": row.service_name,
        "phoneNumber": row.phone_number,
        "priority": str(row.priority),
        "language": row.language,
        "desiredTime": (due if desired == row.due_at else utc_iso(desired)) if desired else "",
        "dueTime": due,
        "publishedAt": published_at or utc_iso(now),
        "userData": row.user_data,
        "outcomeStream": outcome_stream,
        "republish": "0",
    }
    for name in DISPATCH_BOOKING_FIELDS:
        value = params.get(name)
        fields[name] = "" if value is None else str(value)
    return fields


def _trace_each(
    rows: list[repo.Claimed], msg: str, extra: Callable[[repo.Claimed], dict[str, Any]]
) -> None:
    """One TRACE line per claimed callback, bound to it (nothing built when TRACE is off)."""
    if log.isEnabledFor(TRACE):
        for r in rows:
            with bound(tenantId=r.tenant_id, callbackId=r.id):
                log.log(TRACE, msg, extra=extra(r))


def _callback_id(o: Outcome) -> str:
    return o.id


class _Batch:
    """Callbacks claimed in one cycle, when their lease runs out, and the step's corrId."""

    __slots__ = ("corr_id", "lease_until", "rows")

    def __init__(self, rows: list[repo.Claimed], lease_until: float, corr_id: str) -> None:
        self.rows = rows
        self.lease_until = lease_until
        self.corr_id = corr_id


class CallbackMonitor:
    """Dispatches due callbacks and applies outcomes; safe to run in every replica."""

    def __init__(
        self,
        engine: AsyncEngine,
        transport: RoutingTransport,
        lifecycle: Lifecycle,
        events: Events,
        settings: Settings,
        owner: str,
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.lifecycle = lifecycle
        self.events = events
        self.settings = settings
        self.owner = owner
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._supervisor: asyncio.Task[None] | None = None
        self.last_cycle_at = 0.0
        self.last_cycle_seconds = 0.0
        # The name of the loop that died (the monitor then stopped); None while healthy.
        self.failed: str | None = None
        # True while a backlog drains (the last claim was a full batch): statistics wait.
        self.draining = False
        # The dispatch pipeline: the batch being published, the one being marked QUEUED.
        self._publishing: tuple[_Batch, asyncio.Task[float | None]] | None = None
        self._marking: asyncio.Task[None] | None = None
        # Progress: when a dispatch cycle last succeeded, and whether the failures since then
        # were all dependency outages (see ``stalled_seconds`` and ``wedged``).
        self.last_progress_at = time.time()
        self.last_cycle_ok = True
        self._bug_since_progress = False

    @property
    def healthy(self) -> bool:
        """False once a loop has died."""
        return self.failed is None

    def wake(self) -> None:
        """Ask for a dispatch cycle now (an immediate callback was booked); ignored while a
        failed cycle backs off."""
        self._wake.set()

    def stalled_seconds(self, now: float | None = None) -> float:
        """How long every dispatch cycle has failed (0 while the last one succeeded)."""
        if self.last_cycle_ok:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.last_progress_at)

    def wedged(self, threshold: float) -> bool:
        """True when cycles have failed for more than ``threshold`` seconds and not only for a
        dependency outage: a restart may cure that (it cannot cure an outage)."""
        return self._bug_since_progress and self.stalled_seconds() > threshold

    def start(self) -> None:
        """Start the dispatch, outcome and statistics loops under a supervisor."""
        loops: dict[str, Coroutine[Any, Any, None]] = {
            "monitor-dispatch": self._dispatch_loop(),
            "monitor-outcomes": self._outcome_loop(),
            "monitor-stats": self._stats_loop(),
            "monitor-deadlines": DeadlineSweeper(
                self.engine,
                self.transport,
                self.lifecycle,
                self.events,
                self.settings,
                dispatch_fields,
            ).run(self._stopping),
        }
        self._tasks = [asyncio.create_task(c, name=n) for n, c in loops.items()]
        self._supervisor = asyncio.create_task(self._supervise(), name="monitor-supervisor")

    async def _supervise(self) -> None:
        """Wait for a loop to end; one that ends before ``stop`` has died: stop the others."""
        done, _pending = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        if self._stopping.is_set():
            return
        dead = next(iter(done))
        exc = None if dead.cancelled() else dead.exception()
        self.failed = dead.get_name()
        log.error("monitor loop %s died; stopping the monitor", self.failed, exc_info=exc)
        self.events.uncaught_exception("monitor")
        await self._end_loops(self._tasks, _STOP_TIMEOUT_SECONDS)

    async def stop(self, timeout: float = _STOP_TIMEOUT_SECONDS) -> None:
        """Stop the loops in parallel, letting an in-flight cycle finish within ``timeout``."""
        tasks = [*self._tasks, *([self._supervisor] if self._supervisor else [])]
        await self._end_loops(tasks, timeout)
        self._tasks = []
        self._supervisor = None

    async def _end_loops(self, tasks: list[asyncio.Task[None]], timeout: float) -> None:
        """Ask the loops to stop, cancel (and name) those still running after ``timeout``."""
        self._stopping.set()
        self._wake.set()
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            log.warning(
                "monitor loop %s did not stop within %g s; cancelled", t.get_name(), timeout
            )
            t.cancel()
        # Collect every outcome (a loop that died was reported by the supervisor).
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _dispatch_loop(self) -> None:
        """Claim batch N+1 while batch N is published and N-1 marked; when none is due, sleep
        until the next one comes due (at most the poll interval)."""
        batch_size = self.settings.monitor_batch_size
        poll = self.settings.monitor_poll_seconds
        backoff = poll
        self.last_progress_at = time.time()
        while not self._stopping.is_set():
            self._wake.clear()
            started = time.monotonic()
            ok = True
            batch: _Batch | None = None
            try:
                batch = await self._claim()
            except Exception as exc:
                self._cycle_failed(exc)
                ok = False
            ok = await self._advance() and ok
            if batch is not None and not ok:
                # Publish nothing more into a failing dependency: give the leases back.
                await self._release_quietly(batch)
                batch = None
            full = batch is not None and len(batch.rows) >= batch_size
            if batch is not None:
                self._publishing = (batch, asyncio.create_task(self._publish(batch)))
            if not full:
                # Nothing more to overlap with: finish before measuring and sleeping.
                ok = await self._flush() and ok
            self.draining = full
            self.last_cycle_seconds = time.monotonic() - started
            self.last_cycle_at = time.time()
            self._progress(ok)
            self.events.monitor_cycle(self.last_cycle_seconds, self.stalled_seconds())
            backoff = poll if ok else min(max(backoff, 0.5) * 2, DISPATCH_BACKOFF_MAX_SECONDS)
            if full:
                continue
            if ok:
                pause = await self._until_next_due(poll)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=pause)
            else:
                # A booking's wake must not hammer a failing dependency: back off for real.
                await self._sleep(backoff)
        self.draining = False
        await self._flush()

    async def _until_next_due(self, poll: float) -> float:
        """How long an idle cycle sleeps: until the next callback comes due, at most ``poll``
        and at least ``MIN_IDLE_SLEEP_SECONDS``."""
        now = time.time()
        try:
            async with self.engine.connect() as conn:
                due = await repo.next_due(conn, now, now + poll)
        except Exception as exc:
            # The next claim reports a store that is down; the poll bounds the sleep meanwhile.
            log.debug("next due time unknown: %s: %s", type(exc).__name__, exc)
            return poll
        return poll if due is None else min(poll, max(MIN_IDLE_SLEEP_SECONDS, due - time.time()))

    async def _settle(self, task: asyncio.Task[Any]) -> tuple[bool, Any]:
        """Wait for a pipeline stage: (True, its result), or (False, None) logged."""
        try:
            return True, await task
        except Exception as exc:
            self._cycle_failed(exc)
            return False, None

    async def _advance(self) -> bool:
        """Wait for batch N's publish and N-1's mark, then start N's mark; False on failure."""
        ok = True
        if self._marking is not None:
            ok, _ = await self._settle(self._marking)
            self._marking = None
        if self._publishing is not None:
            batch, task = self._publishing
            self._publishing = None
            published, published_at = await self._settle(task)
            if published_at is not None:
                self._marking = asyncio.create_task(self._mark(batch, published_at))
            ok = ok and published
        return ok

    async def _flush(self) -> bool:
        """Finish every batch in the pipeline."""
        ok = await self._advance()
        if self._marking is not None:
            marked, _ = await self._settle(self._marking)
            self._marking = None
            ok = ok and marked
        return ok

    def _progress(self, ok: bool) -> None:
        self.last_cycle_ok = ok
        if ok:
            self.last_progress_at = time.time()
            self._bug_since_progress = False

    def _cycle_failed(self, exc: BaseException) -> None:
        if is_dependency_error(exc) or is_retryable_conflict(exc):
            log.warning("dispatch cycle failed: %s: %s", type(exc).__name__, exc)
        else:
            self._bug_since_progress = True
            log.error("dispatch cycle failed", exc_info=exc)
            self.events.uncaught_exception("monitor")

    async def _release_quietly(self, batch: _Batch) -> None:
        with corr_scope(batch.corr_id):
            try:
                async with self.engine.begin() as conn:
                    await repo.release_leases(conn, self.owner, [r.id for r in batch.rows])
            except Exception as exc:
                # The leases expire on their own; the rows are reclaimed then.
                log.warning("could not release leases: %s: %s", type(exc).__name__, exc)

    async def dispatch_once(self) -> int:
        """One cycle without overlap: claim, publish, mark. Returns how many were claimed."""
        batch = await self._claim()
        if batch is None:
            return 0
        published_at = await self._publish(batch)
        if published_at is not None:
            await self._mark(batch, published_at)
        return len(batch.rows)

    async def _claim(self) -> _Batch | None:
        with corr_scope(new_corr_id()) as corr:
            now = time.time()
            lease = self.settings.monitor_lease_seconds
            # One transaction: the leases and the parking of unreadable rows commit together.
            async with self.engine.begin() as conn:
                rows, unreadable = await repo.claim_due(
                    conn, self.owner, now, lease, self.settings.monitor_batch_size
                )
                await repo.park(conn, unreadable, now)
            self._report_parked(unreadable)
            if not rows:
                return None
            _trace_each(rows, "monitor: claimed due callback", lambda r: {"attempt": r.attempt})
            return _Batch(rows, now + lease, corr)

    async def _publish(self, batch: _Batch) -> float | None:
        """Publish a claimed batch, each attempt once; when it was published (None: dropped)."""
        with corr_scope(batch.corr_id):
            claimed = batch.rows
            publish_time = time.time()
            if publish_time >= batch.lease_until:
                # Another replica may own these rows by now; they are reclaimed and published once.
                log.warning("dropping %d claimed callbacks whose lease ran out", len(claimed))
                return None
            published = utc_iso(publish_time)
            dispatches = await self._dispatches(batch, publish_time, published)
            claimed = batch.rows
            if not claimed:
                return None
            attempts = [(r.id, r.attempt) for r in claimed]
            try:
                await self.transport.publish(dispatches)
            except Exception:
                # Once per attempt until it is published, not once per retry of the batch.
                self.events.submit_failed(attempts)
                await self._release_quietly(batch)
                raise
            self.events.submitted(attempts)
            stream = self.settings.routing_stream
            _trace_each(
                claimed,
                "monitor: published to the routing stream",
                lambda r: {"stream": stream, "attempt": r.attempt},
            )
            return time.time()

    async def _dispatches(
        self, batch: _Batch, publish_time: float, published: str
    ) -> list[Dispatch]:
        """The stream entries of a batch; a row that cannot become one is parked and dropped
        from the batch (it never holds the others back)."""
        stream = self.settings.outcome_stream
        out: list[Dispatch] = []
        bad: list[repo.Unreadable] = []
        for r in batch.rows:
            try:
                fields = dispatch_fields(r, stream, publish_time, published)
            except Exception as exc:
                bad.append(repo.Unreadable(r.id, r.tenant_id, f"dispatch: {type(exc).__name__}"))
                continue
            out.append(Dispatch(r.id, r.attempt, fields))
        if bad:
            ids = {b.id for b in bad}
            batch.rows = [r for r in batch.rows if r.id not in ids]
            async with self.engine.begin() as conn:
                await repo.park(conn, bad, time.time())
            self._report_parked(bad)
        return out

    def _report_parked(self, parked: list[repo.Unreadable]) -> None:
        for p in parked:
            self.events.callback_parked(p.tenant_id)
            with bound(tenantId=p.tenant_id, callbackId=p.id):
                log.warning(
                    "callback parked: its row cannot be dispatched (%s); the admin API shows it",
                    p.reason,
                    extra={"reason": p.reason},
                )

    async def _mark(self, batch: _Batch, published_at: float) -> None:
        """Record a published batch as QUEUED (rows whose lease was lost are left alone); tell
        the routing engine to drop those a cancel completed meanwhile."""
        claimed = batch.rows
        cancelled: list[repo.Claimed] = []

        async def mark() -> None:
            async with self.engine.begin() as conn:
                moved = await repo.mark_queued(conn, self.owner, claimed, published_at)
                if moved < len(claimed):
                    cancelled[:] = await repo.cancelled_in_dispatch(conn, claimed)

        with corr_scope(batch.corr_id):
            await self._retrying(mark)
            _trace_each(
                claimed,
                "monitor: callback QUEUED",
                lambda r: {"latenessSeconds": round(published_at - r.due_at, 3)},
            )
            await self._announce_cancels(cancelled)
        dispatched = self.events.dispatched
        for r in claimed:
            dispatched(r.tenant_id, published_at - r.due_at)

    async def _announce_cancels(self, rows: list[repo.Claimed]) -> None:
        """Tell the routing engine to drop attempts cancelled while they were being published
        (the cancel saw a SCHEDULED callback and announced nothing; its entry went out after)."""
        for row in rows:
            with bound(tenantId=row.tenant_id, callbackId=row.id):
                log.info(
                    "callback cancelled while being dispatched: the routing engine is told "
                    "to drop attempt %d",
                    row.attempt,
                    extra={"attempt": row.attempt},
                )
                await announce_cancel(self.transport, self.events, row.id, row.attempt)

    async def _provision(self) -> None:
        """Create the routing consumer groups, retrying with a growing pause; each failed
        attempt counts once in RBAC_CREATE_VQ_PROXY_ERROR."""
        delay = PROVISION_RETRY_FIRST_SECONDS
        while not self._stopping.is_set():
            try:
                await self.transport.ensure_groups()
                return
            except Exception:
                self.events.provisioning_failed()
                log.warning(
                    "cannot create the routing consumer groups yet; retrying in %.0f s",
                    delay,
                    exc_info=True,
                )
                await self._sleep(delay)
                delay = min(delay * 2, PROVISION_RETRY_MAX_SECONDS)

    async def _outcome_loop(self) -> None:
        transport = self.transport
        await self._provision()
        pause = OUTCOME_RETRY_FIRST_SECONDS
        while not self._stopping.is_set():
            try:
                entries = await transport.read_outcomes(self.owner, 200, 500)
                pause = OUTCOME_RETRY_FIRST_SECONDS
                if not entries:
                    continue
                await self.apply_outcomes(entries)
                await transport.ack_outcomes([eid for eid, _ in entries])
            except Exception as exc:
                if is_dependency_error(exc) or is_retryable_conflict(exc):
                    log.warning("outcome processing failed: %s: %s", type(exc).__name__, exc)
                else:
                    log.exception("outcome processing failed")
                    if not isinstance(exc, GroupMissing):
                        self.events.uncaught_exception("monitor")
                await self._sleep(pause)
                pause = min(pause * 2, OUTCOME_RETRY_MAX_SECONDS)
                if isinstance(exc, GroupMissing):
                    # A routing Redis that restarted empty has lost its groups: provision
                    # again. An unreachable one is not a provisioning failure (its health
                    # gauge says so): only a missing group calls for provisioning.
                    await self._provision()

    async def _stats_loop(self) -> None:
        last_full = 0.0
        while not self._stopping.is_set():
            # Counting every open callback scans the table: while a backlog drains, only the
            # (index-range) due backlog is refreshed, the per-state counts at most once a minute.
            full = not self.draining or time.monotonic() - last_full >= _STATS_MAX_DEFER_SECONDS
            try:
                await self.refresh_stats(by_state=full)
                if full:
                    last_full = time.monotonic()
            except Exception:
                log.debug("monitor statistics refresh failed", exc_info=True)
            await self._sleep(self.settings.monitor_stats_seconds)

    async def refresh_stats(self, by_state: bool = True) -> None:
        """Update the due-backlog and oldest-due gauges (and monitor-size) from the store."""
        now = time.time()
        async with self.engine.begin() as conn:
            await repo.no_parallel_scans(conn)
            backlog, oldest = await repo.due_backlog(conn, now)
            counts = await repo.count_by_state(conn) if by_state else None
            parked = await repo.parked_open_count(conn)
        self.events.parked_count(parked)
        self.events.monitor_stats(
            counts, backlog, max(0.0, now - oldest) if oldest is not None else 0
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _retrying(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run a transaction again when it lost a deadlock or serialization conflict."""
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                await work()
                return
            except Exception as exc:
                if not is_retryable_conflict(exc) or attempt == CONFLICT_RETRIES:
                    raise
                log.info("transaction conflict (%s); running it again", type(exc).__name__)
                await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)

    async def apply_outcomes(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Apply a batch of outcome entries in one transaction (run again on a deadlock), each
        under its entry's corrId, else under the batch's fresh one."""
        read = new_corr_id()
        with corr_scope(read):
            await self._apply_outcomes(entries, read)

    async def _apply_outcomes(self, entries: list[tuple[str, dict[str, str]]], read: str) -> None:
        outcomes: list[Outcome] = []
        for _eid, fields in entries:
            try:
                outcomes.append(Outcome.parse(fields))
            except ValueError as exc:
                log.warning("ignoring malformed outcome event: %s", exc)
        # Rows are locked in id order, as mark_queued locks them, so the two cannot deadlock;
        # the sort is stable, so one callback's outcomes keep their order.
        outcomes.sort(key=_callback_id)

        async def apply_all() -> None:
            now = time.time()
            reports: list[tuple[Any, Outcome, Transition]] = []
            slots: list[tuple[str, float]] = []
            async with self.engine.begin() as conn:
                for o in outcomes:
                    with corr_scope(o.corr_id or read):
                        await self._apply(conn, o, now, reports, slots)
                # Capacity rows after every callback row, in key order (the same lock order
                # in every transaction).
                for service_id, slot in sorted(slots):
                    await repo.release_capacity(conn, service_id, slot)
            for row, o, t in reports:
                with corr_scope(o.corr_id or read):
                    self._report(row, o, t)

        await self._retrying(apply_all)

    async def _apply(
        self,
        conn: AsyncConnection,
        o: Outcome,
        now: float,
        reports: list[tuple[Any, Outcome, Transition]],
        slots: list[tuple[str, float]],
    ) -> None:
        row = await repo.find_callback(conn, o.id, lock=True)
        t = await self.lifecycle.outcome(row, o.event, o.reason, o.attempt, now)
        if t is None:
            return
        if t.release_slot is not None and row is not None:
            slots.append((row.service_id, t.release_slot))
            t = dataclasses.replace(t, release_slot=None)
        await repo.apply(conn, row, t)
        reports.append((row, o, t))

    def _report(self, row: Any, o: Outcome, t: Transition) -> None:
        for reason in t.outcomes:
            self.events.outcome(row.tenant_id, reason)
        if t.retry_in is not None:
            with bound(tenantId=row.tenant_id, callbackId=row.id):
                log.info(
                    "attempt %d ended %s; retry in %ss",
                    row.attempt,
                    o.reason,
                    int(t.retry_in),
                    extra={"attempt": row.attempt, "reason": o.reason},
                )
        elif log.isEnabledFor(logging.DEBUG):
            with bound(tenantId=row.tenant_id, callbackId=row.id):
                log.debug(
                    "callback %s -> %s",
                    t.from_state,
                    t.to_state,
                    extra={"attempt": row.attempt, "reason": o.reason},
                )

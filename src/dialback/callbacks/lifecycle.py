"""The callback state machine: the states, their order, and every transition.

SCHEDULED -> QUEUED -> ROUTING -> PROCESSING -> COMPLETED, and COMPLETED -> SCHEDULED when an
unanswered attempt is retried. Each decision here is pure: it returns a ``Transition`` (the new
state, the column changes, the history rows, what else to do) or refuses with ``Conflict``;
``callbacks.repository.apply`` writes it. The monitor's bulk SCHEDULED -> QUEUED step (one SQL
statement, ``repository.mark_queued``) records the same ``queued_event``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from dialback.kit.errors import Conflict


class State(StrEnum):
    """GES callback states, in their order."""

    SCHEDULED = "SCHEDULED"
    QUEUED = "QUEUED"
    ROUTING = "ROUTING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"


StateName = Literal["SCHEDULED", "QUEUED", "ROUTING", "PROCESSING", "COMPLETED"]
ORDER: tuple[str, ...] = tuple(s.value for s in State)
RANK: dict[str, int] = {s: i for i, s in enumerate(ORDER)}
# A callback in one of these states still awaits or is in its call (GES counts them "open").
OPEN_STATES: tuple[str, ...] = ("SCHEDULED", "QUEUED", "ROUTING", "PROCESSING")
# Not yet handled by an agent.
CANCELLABLE_STATES: tuple[str, ...] = ("SCHEDULED", "QUEUED", "ROUTING")
# The states whose attempt the routing engine holds (a cancel is announced to it).
ROUTED_STATES: tuple[str, ...] = ("QUEUED", "ROUTING")
# Reasons an attempt ends with that are never retried.
FINAL_REASONS: tuple[str | None, ...] = (None, "answered", "cancelled")
# The reason of an attempt dialback ended itself because its state outlived its deadline.
TIMEOUT_REASON = "timeout"


@dataclass(frozen=True, slots=True)
class Event:
    """One row of a callback's history."""

    from_state: str | None
    to_state: str
    reason: str | None
    attempt: int
    source: str


@dataclass(frozen=True, slots=True)
class Transition:
    """A decided state change: what to write, and what else to do once it is committed."""

    at: float
    from_state: str  # after an overtaken SCHEDULED -> QUEUED step: QUEUED
    to_state: str
    values: dict[str, Any]  # column changes of the callback row
    events: tuple[Event, ...]  # history rows, in order
    outcomes: tuple[str, ...] = ()  # attempt outcomes to count (answered, busy, ..., retry)
    retry_in: float | None = None  # seconds until the retried attempt is due
    release_slot: float | None = None  # the capacity slot given back
    notify_routing: bool = False  # tell the routing engine to drop the attempt
    republish: int | None = None  # publish the same attempt again, as this republish number


class CallbackRow(Protocol):
    """The columns of a callback the decisions read."""

    state: str
    reason: str | None
    attempt: int
    max_attempts: int
    queued_at: float | None
    routed_at: float | None
    slot_start: float | None
    lease_expires_at: float | None
    updated_at: float


class RetryRule(Protocol):
    """A service's retry policy (``services.schemas.RetryPolicy``)."""

    @property
    def retry_on(self) -> Collection[str]: ...

    @property
    def delay_seconds(self) -> int: ...


def queued_event(attempt: int) -> Event:
    """The history row of a dispatched attempt (SCHEDULED -> QUEUED by the monitor)."""
    return Event("SCHEDULED", "QUEUED", None, attempt, "monitor")


def _detail(row: CallbackRow) -> str:
    return f"COMPLETED ({row.reason})" if row.state == "COMPLETED" else row.state


def ignores(row: CallbackRow, event: str, attempt: int) -> bool:
    """Whether an outcome ``event`` for ``attempt`` changes nothing: another attempt's, too
    late (the callback is COMPLETED) or behind the callback's state."""
    return row.attempt != attempt or row.state == "COMPLETED" or RANK[event] <= RANK[row.state]


def may_retry(row: CallbackRow, reason: str | None) -> bool:
    """Whether an attempt ending with ``reason`` may be retried at all (policy aside)."""
    return reason not in FINAL_REASONS and row.attempt < row.max_attempts


def retry_delay(row: CallbackRow, reason: str | None, rule: RetryRule | None) -> float | None:
    """Seconds until the next attempt, or None: no retry (``rule`` None: the service is gone)."""
    if not may_retry(row, reason) or rule is None or reason not in rule.retry_on:
        return None
    return float(rule.delay_seconds)


def outcome(
    row: CallbackRow,
    event: str,
    reason: str | None,
    attempt: int,
    now: float,
    rule: RetryRule | None,
) -> Transition | None:
    """The routing engine reported ``event`` (ROUTING, PROCESSING, COMPLETED with ``reason``)
    for ``attempt``; None when it changes nothing."""
    if ignores(row, event, attempt):
        return None
    events: list[Event] = []
    from_state = row.state
    if from_state == "SCHEDULED":
        # The outcome overtook mark_queued (the attempt was published): record QUEUED first.
        events.append(queued_event(row.attempt))
        from_state = "QUEUED"
    values: dict[str, Any] = {"updated_at": now, "queued_at": row.queued_at or now}
    if row.lease_expires_at is not None:
        # A lease claimed for dispatch or a deadline held for a QUEUED attempt: over now.
        values.update(lease_owner=None, lease_expires_at=None)
    if event == "ROUTING":
        values["routed_at"] = now
    elif event == "PROCESSING":
        values["routed_at"] = row.routed_at or now
    else:
        delay = retry_delay(row, reason, rule)
        if delay is not None:
            values.update(
                state="SCHEDULED",
                attempt=row.attempt + 1,
                due_at=now + delay,
                last_reason=reason,
                queued_at=None,
                routed_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )
            events.append(Event(from_state, "COMPLETED", reason, row.attempt, "routing"))
            events.append(Event("COMPLETED", "SCHEDULED", "retry", row.attempt + 1, "monitor"))
            return Transition(
                now,
                from_state,
                "SCHEDULED",
                values,
                tuple(events),
                outcomes=(reason or "failed", "retry"),
                retry_in=delay,
            )
        values.update(completed_at=now, reason=reason, last_reason=reason)
    values["state"] = event
    events.append(Event(from_state, event, reason, row.attempt, "routing"))
    counted = (reason or "unknown",) if event == "COMPLETED" else ()
    return Transition(now, from_state, event, values, tuple(events), outcomes=counted)


def cancel(row: CallbackRow, now: float, source: str) -> Transition:
    """Complete a callback no agent handles yet with reason ``cancelled``; 409 otherwise."""
    if row.state not in CANCELLABLE_STATES:
        raise Conflict(f"callback is {_detail(row)} and can no longer be cancelled")
    values = {
        "state": "COMPLETED",
        "reason": "cancelled",
        "completed_at": now,
        "updated_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    return Transition(
        now,
        row.state,
        "COMPLETED",
        values,
        (Event(row.state, "COMPLETED", "cancelled", row.attempt, source),),
        # Only a SCHEDULED callback still holds its place; a dispatched one gave it up.
        release_slot=row.slot_start if row.state == "SCHEDULED" else None,
        notify_routing=row.state in ROUTED_STATES,
    )


def check_reschedule(row: CallbackRow, now: float) -> None:
    """409 unless the callback is SCHEDULED and not being dispatched."""
    if row.state != "SCHEDULED":
        raise Conflict(f"callback is {_detail(row)}; only SCHEDULED callbacks can be rescheduled")
    if row.lease_expires_at is not None and row.lease_expires_at > now:
        # The monitor is publishing it right now; moving it would strand the dispatch.
        raise Conflict(
            "callback is being dispatched right now; only SCHEDULED callbacks "
            "that are not yet due can be rescheduled"
        )


def reschedule(row: CallbackRow, due: float, slot_start: float | None, now: float) -> Transition:
    """Move a SCHEDULED callback to ``due`` in the slot starting ``slot_start`` (None: the
    slot has no limit); the place it held is given back unless it stays in that slot."""
    check_reschedule(row, now)
    values = {
        "desired_time": due,
        "due_at": due,
        "slot_start": slot_start,
        "updated_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    held = row.slot_start
    return Transition(
        now,
        row.state,
        "SCHEDULED",
        values,
        (Event(row.state, "SCHEDULED", "rescheduled", row.attempt, "admin"),),
        release_slot=held if held is not None and held != slot_start else None,
    )


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long each routed state may last (settings, docs/routing.md#deadlines)."""

    queued_republish: float  # QUEUED, not acknowledged this long after its last publish
    max_republishes: int  # republishes of one attempt at most
    queued_timeout: float  # QUEUED this long after it was first published: the attempt ends
    routing_timeout: float  # ROUTING this long without PROCESSING or COMPLETED
    processing_timeout: float  # PROCESSING this long without COMPLETED


def _timed_out(row: CallbackRow, now: float, rule: RetryRule | None) -> Transition:
    """End an attempt with reason ``timeout``; only an attempt no agent ever had (QUEUED) is
    retried, under the policy for ``failed``: one the engine held might have been dialled."""
    delay = retry_delay(row, "failed", rule) if row.state == "QUEUED" else None
    values: dict[str, Any] = {"updated_at": now, "lease_owner": None, "lease_expires_at": None}
    ended = Event(row.state, "COMPLETED", TIMEOUT_REASON, row.attempt, "monitor")
    # The engine is told to drop an attempt it may still hold (never one an agent handles).
    notify = row.state in ROUTED_STATES
    if delay is not None:
        values.update(
            state="SCHEDULED",
            attempt=row.attempt + 1,
            due_at=now + delay,
            last_reason=TIMEOUT_REASON,
            queued_at=None,
            routed_at=None,
        )
        retried = Event("COMPLETED", "SCHEDULED", "retry", row.attempt + 1, "monitor")
        return Transition(
            now,
            row.state,
            "SCHEDULED",
            values,
            (ended, retried),
            outcomes=(TIMEOUT_REASON, "retry"),
            retry_in=delay,
            notify_routing=notify,
        )
    values.update(
        state="COMPLETED", reason=TIMEOUT_REASON, last_reason=TIMEOUT_REASON, completed_at=now
    )
    return Transition(
        now,
        row.state,
        "COMPLETED",
        values,
        (ended,),
        outcomes=(TIMEOUT_REASON,),
        notify_routing=notify,
    )


# The holder a QUEUED attempt's lease names while it waits for its next deadline: in the
# routed states the lease columns, free otherwise, hold when the deadline sweep looks again.
DEADLINE_HOLDER = "deadlines"


def deadline(
    row: CallbackRow, now: float, limits: Deadlines, rule: RetryRule | None, republished: int
) -> Transition | None:
    """What a routed attempt's deadline calls for at ``now``, given how often it was
    republished: publish the same attempt again, end it (``timeout``, perhaps retried), hold
    it until its next deadline (QUEUED), or nothing yet (None)."""
    if row.state == "QUEUED":
        first = row.queued_at if row.queued_at is not None else row.updated_at
        final = first + limits.queued_timeout
        if now >= final:
            return _timed_out(row, now, rule)
        if now < (row.lease_expires_at or row.updated_at + limits.queued_republish):
            return None
        values: dict[str, Any] = {"lease_owner": DEADLINE_HOLDER, "lease_expires_at": final}
        if republished >= limits.max_republishes:
            # Republished enough: only the QUEUED deadline itself is left to wait for.
            return Transition(now, "QUEUED", "QUEUED", values, ())
        values.update(updated_at=now, lease_expires_at=min(final, now + limits.queued_republish))
        event = Event("QUEUED", "QUEUED", "republished", row.attempt, "monitor")
        return Transition(now, "QUEUED", "QUEUED", values, (event,), republish=republished + 1)
    if row.state == "ROUTING":
        limit = limits.routing_timeout
    elif row.state == "PROCESSING":
        limit = limits.processing_timeout
    else:
        return None
    return _timed_out(row, now, None) if now - row.updated_at >= limit else None


RetryLookup = Callable[[str, str], Awaitable[RetryRule | None]]
"""(tenant id, service name) -> the service's retry policy, None when the service is gone."""


class Lifecycle:
    """The state machine with the one thing its decisions look up: a service's retry policy."""

    def __init__(self, retry_rule: RetryLookup) -> None:
        self._retry_rule = retry_rule

    async def outcome(
        self, row: Any, event: str, reason: str | None, attempt: int, now: float
    ) -> Transition | None:
        """``outcome`` for ``row`` (None: unknown callback), looking the policy up only when
        the attempt could be retried."""
        if row is None or ignores(row, event, attempt):
            return None
        rule = None
        if event == "COMPLETED" and may_retry(row, reason):
            rule = await self._retry_rule(row.tenant_id, row.service_name)
        return outcome(row, event, reason, attempt, now, rule)

    async def deadline(
        self, row: Any, now: float, limits: Deadlines, republished: int
    ) -> Transition | None:
        """``deadline`` for ``row``, looking the policy up only when a timeout could retry."""
        t = deadline(row, now, limits, None, republished)
        if t is not None and t.to_state == "COMPLETED" and t.from_state == "QUEUED":
            retry = may_retry(row, "failed")
            rule = await self._retry_rule(row.tenant_id, row.service_name) if retry else None
            t = deadline(row, now, limits, rule, republished) if rule is not None else t
        return t

"""The callback state machine, table-driven: every state x every event -> the decision."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from dialback.callbacks import lifecycle
from dialback.callbacks.lifecycle import ORDER, Deadlines, Lifecycle, State, Transition
from dialback.kit.errors import Conflict

NOW = 1000.0
SLOT = 3600.0  # the slot a SCHEDULED callback holds
NEW_SLOT = 7200.0  # where a reschedule moves it


@dataclass
class Row:
    state: str
    reason: str | None = None
    attempt: int = 1
    max_attempts: int = 3
    queued_at: float | None = None
    routed_at: float | None = None
    slot_start: float | None = SLOT
    lease_expires_at: float | None = None
    updated_at: float = 0.0
    tenant_id: str = "t1"
    service_name: str = "sales"


@dataclass
class Rule:
    retry_on: list[str] = field(default_factory=lambda: ["no-answer", "busy", "failed"])
    delay_seconds: int = 60


def row_in(state: str, **changes: Any) -> Row:
    """A callback in ``state`` with the timestamps that state implies."""
    queued = 900.0 if ORDER.index(state) >= 1 else None
    routed = 950.0 if ORDER.index(state) >= 2 else None
    base = Row(
        state, "answered" if state == "COMPLETED" else None, queued_at=queued, routed_at=routed
    )
    return replace(base, **changes)


IGNORED = "ignored"


def refused(text: str) -> tuple[str, str]:
    return ("409", text)


def moved(
    to: str, *events: tuple[Any, ...], release: float | None = None, notify: bool = False
) -> tuple[str, list[tuple[Any, ...]], float | None, bool]:
    return (to, list(events), release, notify)


def routing(frm: str, to: str, reason: str | None = None, attempt: int = 1) -> tuple[Any, ...]:
    return (frm, to, reason, attempt, "routing")


def queued(attempt: int = 1) -> tuple[Any, ...]:
    return ("SCHEDULED", "QUEUED", None, attempt, "monitor")


def retry(attempt: int = 2) -> tuple[Any, ...]:
    return ("COMPLETED", "SCHEDULED", "retry", attempt, "monitor")


# Events: (what happens, how it is run). Outcomes are for attempt 1 unless said otherwise.
EVENTS: dict[str, Any] = {
    "ROUTING": ("outcome", "ROUTING", None, {}),
    "PROCESSING": ("outcome", "PROCESSING", None, {}),
    "COMPLETED answered": ("outcome", "COMPLETED", "answered", {}),
    "COMPLETED busy, retry allowed": ("outcome", "COMPLETED", "busy", {}),
    "COMPLETED busy, not in retryOn": ("outcome", "COMPLETED", "busy", {"rule": Rule([])}),
    "COMPLETED busy, max attempts reached": ("outcome", "COMPLETED", "busy", {"attempt": 3}),
    "COMPLETED busy, service gone": ("outcome", "COMPLETED", "busy", {"rule": None}),
    "COMPLETED cancelled": ("outcome", "COMPLETED", "cancelled", {}),
    "ROUTING for another attempt": ("outcome", "ROUTING", None, {"event_attempt": 2}),
    "cancel": ("cancel", None, None, {}),
    "reschedule": ("reschedule", None, None, {}),
    "reschedule while leased": ("reschedule", None, None, {"leased": True}),
}

NOT_CANCELLABLE = "can no longer be cancelled"
ONLY_SCHEDULED = "only SCHEDULED callbacks can be rescheduled"

TABLE: dict[tuple[str, str], Any] = {
    # SCHEDULED: an outcome overtook mark_queued, so QUEUED is recorded first.
    ("SCHEDULED", "ROUTING"): moved("ROUTING", queued(), routing("QUEUED", "ROUTING")),
    ("SCHEDULED", "PROCESSING"): moved("PROCESSING", queued(), routing("QUEUED", "PROCESSING")),
    ("SCHEDULED", "COMPLETED answered"): moved(
        "COMPLETED", queued(), routing("QUEUED", "COMPLETED", "answered")
    ),
    ("SCHEDULED", "COMPLETED busy, retry allowed"): moved(
        "SCHEDULED", queued(), routing("QUEUED", "COMPLETED", "busy"), retry()
    ),
    ("SCHEDULED", "COMPLETED busy, not in retryOn"): moved(
        "COMPLETED", queued(), routing("QUEUED", "COMPLETED", "busy")
    ),
    ("SCHEDULED", "COMPLETED busy, max attempts reached"): moved(
        "COMPLETED", queued(3), routing("QUEUED", "COMPLETED", "busy", 3)
    ),
    ("SCHEDULED", "COMPLETED busy, service gone"): moved(
        "COMPLETED", queued(), routing("QUEUED", "COMPLETED", "busy")
    ),
    ("SCHEDULED", "COMPLETED cancelled"): moved(
        "COMPLETED", queued(), routing("QUEUED", "COMPLETED", "cancelled")
    ),
    ("SCHEDULED", "ROUTING for another attempt"): IGNORED,
    ("SCHEDULED", "cancel"): moved(
        "COMPLETED", ("SCHEDULED", "COMPLETED", "cancelled", 1, "api"), release=SLOT
    ),
    ("SCHEDULED", "reschedule"): moved(
        "SCHEDULED", ("SCHEDULED", "SCHEDULED", "rescheduled", 1, "admin"), release=SLOT
    ),
    ("SCHEDULED", "reschedule while leased"): refused("being dispatched right now"),
    # QUEUED
    ("QUEUED", "ROUTING"): moved("ROUTING", routing("QUEUED", "ROUTING")),
    ("QUEUED", "PROCESSING"): moved("PROCESSING", routing("QUEUED", "PROCESSING")),
    ("QUEUED", "COMPLETED answered"): moved(
        "COMPLETED", routing("QUEUED", "COMPLETED", "answered")
    ),
    ("QUEUED", "COMPLETED busy, retry allowed"): moved(
        "SCHEDULED", routing("QUEUED", "COMPLETED", "busy"), retry()
    ),
    ("QUEUED", "COMPLETED busy, not in retryOn"): moved(
        "COMPLETED", routing("QUEUED", "COMPLETED", "busy")
    ),
    ("QUEUED", "COMPLETED busy, max attempts reached"): moved(
        "COMPLETED", routing("QUEUED", "COMPLETED", "busy", 3)
    ),
    ("QUEUED", "COMPLETED busy, service gone"): moved(
        "COMPLETED", routing("QUEUED", "COMPLETED", "busy")
    ),
    ("QUEUED", "COMPLETED cancelled"): moved(
        "COMPLETED", routing("QUEUED", "COMPLETED", "cancelled")
    ),
    ("QUEUED", "ROUTING for another attempt"): IGNORED,
    ("QUEUED", "cancel"): moved(
        "COMPLETED", ("QUEUED", "COMPLETED", "cancelled", 1, "api"), notify=True
    ),
    ("QUEUED", "reschedule"): refused(f"callback is QUEUED; {ONLY_SCHEDULED}"),
    ("QUEUED", "reschedule while leased"): refused(f"callback is QUEUED; {ONLY_SCHEDULED}"),
    # ROUTING
    ("ROUTING", "ROUTING"): IGNORED,
    ("ROUTING", "PROCESSING"): moved("PROCESSING", routing("ROUTING", "PROCESSING")),
    ("ROUTING", "COMPLETED answered"): moved(
        "COMPLETED", routing("ROUTING", "COMPLETED", "answered")
    ),
    ("ROUTING", "COMPLETED busy, retry allowed"): moved(
        "SCHEDULED", routing("ROUTING", "COMPLETED", "busy"), retry()
    ),
    ("ROUTING", "COMPLETED busy, not in retryOn"): moved(
        "COMPLETED", routing("ROUTING", "COMPLETED", "busy")
    ),
    ("ROUTING", "COMPLETED busy, max attempts reached"): moved(
        "COMPLETED", routing("ROUTING", "COMPLETED", "busy", 3)
    ),
    ("ROUTING", "COMPLETED busy, service gone"): moved(
        "COMPLETED", routing("ROUTING", "COMPLETED", "busy")
    ),
    ("ROUTING", "COMPLETED cancelled"): moved(
        "COMPLETED", routing("ROUTING", "COMPLETED", "cancelled")
    ),
    ("ROUTING", "ROUTING for another attempt"): IGNORED,
    ("ROUTING", "cancel"): moved(
        "COMPLETED", ("ROUTING", "COMPLETED", "cancelled", 1, "api"), notify=True
    ),
    ("ROUTING", "reschedule"): refused(f"callback is ROUTING; {ONLY_SCHEDULED}"),
    ("ROUTING", "reschedule while leased"): refused(f"callback is ROUTING; {ONLY_SCHEDULED}"),
    # PROCESSING
    ("PROCESSING", "ROUTING"): IGNORED,
    ("PROCESSING", "PROCESSING"): IGNORED,
    ("PROCESSING", "COMPLETED answered"): moved(
        "COMPLETED", routing("PROCESSING", "COMPLETED", "answered")
    ),
    ("PROCESSING", "COMPLETED busy, retry allowed"): moved(
        "SCHEDULED", routing("PROCESSING", "COMPLETED", "busy"), retry()
    ),
    ("PROCESSING", "COMPLETED busy, not in retryOn"): moved(
        "COMPLETED", routing("PROCESSING", "COMPLETED", "busy")
    ),
    ("PROCESSING", "COMPLETED busy, max attempts reached"): moved(
        "COMPLETED", routing("PROCESSING", "COMPLETED", "busy", 3)
    ),
    ("PROCESSING", "COMPLETED busy, service gone"): moved(
        "COMPLETED", routing("PROCESSING", "COMPLETED", "busy")
    ),
    ("PROCESSING", "COMPLETED cancelled"): moved(
        "COMPLETED", routing("PROCESSING", "COMPLETED", "cancelled")
    ),
    ("PROCESSING", "ROUTING for another attempt"): IGNORED,
    ("PROCESSING", "cancel"): refused(f"callback is PROCESSING and {NOT_CANCELLABLE}"),
    ("PROCESSING", "reschedule"): refused(f"callback is PROCESSING; {ONLY_SCHEDULED}"),
    ("PROCESSING", "reschedule while leased"): refused(f"callback is PROCESSING; {ONLY_SCHEDULED}"),
    # COMPLETED: nothing moves it any more.
    ("COMPLETED", "ROUTING"): IGNORED,
    ("COMPLETED", "PROCESSING"): IGNORED,
    ("COMPLETED", "COMPLETED answered"): IGNORED,
    ("COMPLETED", "COMPLETED busy, retry allowed"): IGNORED,
    ("COMPLETED", "COMPLETED busy, not in retryOn"): IGNORED,
    ("COMPLETED", "COMPLETED busy, max attempts reached"): IGNORED,
    ("COMPLETED", "COMPLETED busy, service gone"): IGNORED,
    ("COMPLETED", "COMPLETED cancelled"): IGNORED,
    ("COMPLETED", "ROUTING for another attempt"): IGNORED,
    ("COMPLETED", "cancel"): refused(f"callback is COMPLETED (answered) and {NOT_CANCELLABLE}"),
    ("COMPLETED", "reschedule"): refused(f"callback is COMPLETED (answered); {ONLY_SCHEDULED}"),
    ("COMPLETED", "reschedule while leased"): refused(
        f"callback is COMPLETED (answered); {ONLY_SCHEDULED}"
    ),
}


def run(state: str, event: str) -> Transition | None:
    kind, name, reason, opts = EVENTS[event]
    row = row_in(state, attempt=opts.get("attempt", 1))
    if kind == "outcome":
        attempt = opts.get("event_attempt", row.attempt)
        return lifecycle.outcome(row, name, reason, attempt, NOW, opts.get("rule", Rule()))
    if kind == "cancel":
        return lifecycle.cancel(row, NOW, "api")
    if opts.get("leased"):
        row.lease_expires_at = NOW + 10
    return lifecycle.reschedule(row, NOW + 7200, NEW_SLOT, NOW)


def summary(state: str, event: str) -> Any:
    try:
        t = run(state, event)
    except Conflict as exc:
        return ("409", exc.message)
    if t is None:
        return IGNORED
    events = [(e.from_state, e.to_state, e.reason, e.attempt, e.source) for e in t.events]
    return (t.to_state, events, t.release_slot, t.notify_routing)


def test_the_table_covers_every_state_and_every_event() -> None:
    assert set(TABLE) == set(itertools.product(ORDER, EVENTS))
    assert list(ORDER) == [s.value for s in State]


@pytest.mark.parametrize(("state", "event"), list(TABLE), ids=lambda v: str(v))
def test_transition(state: str, event: str) -> None:
    got = summary(state, event)
    expected = TABLE[(state, event)]
    if isinstance(expected, tuple) and expected[0] == "409":
        assert got[0] == "409" and expected[1] in got[1], got
    else:
        assert got == expected


def test_state_sets() -> None:
    assert ORDER[:4] == lifecycle.OPEN_STATES
    assert ORDER[:3] == lifecycle.CANCELLABLE_STATES
    assert [lifecycle.RANK[s] for s in ORDER] == [0, 1, 2, 3, 4]


def test_routing_and_processing_columns() -> None:
    t = lifecycle.outcome(row_in("QUEUED"), "ROUTING", None, 1, NOW, Rule())
    assert t is not None
    assert t.values == {"updated_at": NOW, "queued_at": 900.0, "routed_at": NOW, "state": "ROUTING"}
    assert t.outcomes == ()
    # PROCESSING keeps the routed time it had; a callback that skipped ROUTING gets one now.
    t = lifecycle.outcome(row_in("ROUTING"), "PROCESSING", None, 1, NOW, Rule())
    assert t is not None and t.values["routed_at"] == 950.0
    t = lifecycle.outcome(row_in("SCHEDULED"), "PROCESSING", None, 1, NOW, Rule())
    assert t is not None and t.values["routed_at"] == NOW and t.values["queued_at"] == NOW
    assert t.from_state == "QUEUED"


def test_completion_columns_and_counted_outcomes() -> None:
    t = lifecycle.outcome(row_in("PROCESSING"), "COMPLETED", "answered", 1, NOW, Rule())
    assert t is not None and t.retry_in is None and t.outcomes == ("answered",)
    assert t.values == {
        "updated_at": NOW,
        "queued_at": 900.0,
        "completed_at": NOW,
        "reason": "answered",
        "last_reason": "answered",
        "state": "COMPLETED",
    }


def test_retry_columns() -> None:
    t = lifecycle.outcome(
        row_in("ROUTING"), "COMPLETED", "no-answer", 1, NOW, Rule(delay_seconds=30)
    )
    assert t is not None and t.retry_in == 30.0 and t.outcomes == ("no-answer", "retry")
    assert t.values == {
        "updated_at": NOW,
        "queued_at": None,
        "routed_at": None,
        "state": "SCHEDULED",
        "attempt": 2,
        "due_at": NOW + 30,
        "last_reason": "no-answer",
        "lease_owner": None,
        "lease_expires_at": None,
    }


def test_cancel_and_reschedule_columns() -> None:
    t = lifecycle.cancel(row_in("SCHEDULED", lease_expires_at=NOW + 5), NOW, "admin")
    assert t.values == {
        "state": "COMPLETED",
        "reason": "cancelled",
        "completed_at": NOW,
        "updated_at": NOW,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    assert t.events[0].source == "admin"
    t = lifecycle.reschedule(row_in("SCHEDULED"), NOW + 60, None, NOW)
    assert t.values["desired_time"] == t.values["due_at"] == NOW + 60
    assert t.values["slot_start"] is None and t.release_slot == SLOT
    # Staying in the slot it holds gives nothing back; an expired lease does not block.
    t = lifecycle.reschedule(row_in("SCHEDULED", lease_expires_at=NOW - 1), NOW + 60, SLOT, NOW)
    assert t.release_slot is None
    t = lifecycle.reschedule(row_in("SCHEDULED", slot_start=None), NOW + 60, NEW_SLOT, NOW)
    assert t.release_slot is None


@pytest.mark.parametrize(
    ("state", "reason", "attempt", "looked_up"),
    [
        ("ROUTING", "busy", 1, True),
        ("ROUTING", "answered", 1, False),
        ("ROUTING", "cancelled", 1, False),
        ("ROUTING", "busy", 3, False),  # the last attempt: no policy needed
        ("COMPLETED", "busy", 1, False),  # ignored before any look-up
    ],
)
async def test_the_retry_policy_is_looked_up_only_when_a_retry_is_possible(
    state: str, reason: str, attempt: int, looked_up: bool
) -> None:
    calls: list[tuple[str, str]] = []

    async def rule(tenant_id: str, service: str) -> Rule:
        calls.append((tenant_id, service))
        return Rule()

    machine = Lifecycle(rule)
    row = row_in(state, attempt=attempt)
    await machine.outcome(row, "COMPLETED", reason, attempt, NOW)
    assert calls == ([("t1", "sales")] if looked_up else [])
    assert await machine.outcome(None, "COMPLETED", reason, attempt, NOW) is None


# Deadlines of the routed states: republish 60 s apart at most twice, QUEUED ends after an
# hour, ROUTING after 15 minutes, PROCESSING after 4 hours.
LIMITS = Deadlines(
    queued_republish=60,
    max_republishes=2,
    queued_timeout=3600,
    routing_timeout=900,
    processing_timeout=14400,
)
HOLDER = lifecycle.DEADLINE_HOLDER


def timed_out(state: str, attempt: int = 1) -> tuple[Any, ...]:
    return (state, "COMPLETED", "timeout", attempt, "monitor")


def republished(attempt: int = 1) -> tuple[Any, ...]:
    return ("QUEUED", "QUEUED", "republished", attempt, "monitor")


# (row, republished so far, retry rule) -> (new state, history, column changes, republish
# number, tell the engine to drop it); None: nothing due yet.
DEADLINE_TABLE: dict[str, tuple[Row, int, Rule | None, Any]] = {
    "QUEUED, published 30 s ago": (
        row_in("QUEUED", queued_at=NOW - 30, updated_at=NOW - 30),
        0,
        Rule(),
        None,
    ),
    "QUEUED, unacknowledged 60 s": (
        row_in("QUEUED", queued_at=NOW - 60, updated_at=NOW - 60),
        0,
        Rule(),
        (
            "QUEUED",
            [republished()],
            {"lease_owner": HOLDER, "lease_expires_at": NOW + 60, "updated_at": NOW},
            1,
            False,
        ),
    ),
    "QUEUED, republished, next deadline not yet": (
        row_in("QUEUED", queued_at=NOW - 90, updated_at=NOW - 30, lease_expires_at=NOW + 30),
        1,
        Rule(),
        None,
    ),
    "QUEUED, republished, unacknowledged again": (
        row_in("QUEUED", queued_at=NOW - 120, updated_at=NOW - 60, lease_expires_at=NOW),
        1,
        Rule(),
        (
            "QUEUED",
            [republished()],
            {"lease_owner": HOLDER, "lease_expires_at": NOW + 60, "updated_at": NOW},
            2,
            False,
        ),
    ),
    "QUEUED, republished enough: held until its timeout": (
        row_in("QUEUED", queued_at=NOW - 180, updated_at=NOW - 60, lease_expires_at=NOW),
        2,
        Rule(),
        ("QUEUED", [], {"lease_owner": HOLDER, "lease_expires_at": NOW - 180 + 3600}, None, False),
    ),
    "QUEUED, the next republish would pass the timeout": (
        row_in("QUEUED", queued_at=NOW - 3590, updated_at=NOW - 60),
        0,
        Rule(),
        (
            "QUEUED",
            [republished()],
            {"lease_owner": HOLDER, "lease_expires_at": NOW + 10, "updated_at": NOW},
            1,
            False,
        ),
    ),
    "QUEUED past its timeout, retry allowed": (
        row_in("QUEUED", queued_at=NOW - 3600, updated_at=NOW - 60, lease_expires_at=NOW),
        2,
        Rule(delay_seconds=30),
        (
            "SCHEDULED",
            [timed_out("QUEUED"), retry()],
            {
                "updated_at": NOW,
                "lease_owner": None,
                "lease_expires_at": None,
                "state": "SCHEDULED",
                "attempt": 2,
                "due_at": NOW + 30,
                "last_reason": "timeout",
                "queued_at": None,
                "routed_at": None,
            },
            None,
            True,
        ),
    ),
    "QUEUED past its timeout, failed not in retryOn": (
        row_in("QUEUED", queued_at=NOW - 3600, updated_at=NOW - 3600),
        0,
        Rule(["busy"]),
        (
            "COMPLETED",
            [timed_out("QUEUED")],
            {
                "updated_at": NOW,
                "lease_owner": None,
                "lease_expires_at": None,
                "state": "COMPLETED",
                "reason": "timeout",
                "last_reason": "timeout",
                "completed_at": NOW,
            },
            None,
            True,
        ),
    ),
    "QUEUED past its timeout, last attempt": (
        row_in("QUEUED", attempt=3, queued_at=NOW - 3600, updated_at=NOW - 3600),
        0,
        Rule(),
        ("COMPLETED", [timed_out("QUEUED", 3)], "timeout", None, True),
    ),
    "QUEUED past its timeout, service gone": (
        row_in("QUEUED", queued_at=NOW - 3600, updated_at=NOW - 3600),
        0,
        None,
        ("COMPLETED", [timed_out("QUEUED")], "timeout", None, True),
    ),
    "ROUTING for 14 minutes": (row_in("ROUTING", updated_at=NOW - 840), 0, Rule(), None),
    "ROUTING for 15 minutes: never retried": (
        row_in("ROUTING", updated_at=NOW - 900),
        0,
        Rule(),
        ("COMPLETED", [timed_out("ROUTING")], "timeout", None, True),
    ),
    "PROCESSING for 3 hours": (row_in("PROCESSING", updated_at=NOW - 3 * 3600), 0, Rule(), None),
    "PROCESSING for 4 hours: never retried, an agent has it": (
        row_in("PROCESSING", updated_at=NOW - 4 * 3600),
        0,
        Rule(),
        ("COMPLETED", [timed_out("PROCESSING")], "timeout", None, False),
    ),
    "SCHEDULED": (row_in("SCHEDULED", updated_at=NOW - 86400), 0, Rule(), None),
    "COMPLETED": (row_in("COMPLETED", updated_at=NOW - 86400), 0, Rule(), None),
}


@pytest.mark.parametrize("case", list(DEADLINE_TABLE))
def test_deadline(case: str) -> None:
    row, done, rule, expected = DEADLINE_TABLE[case]
    t = lifecycle.deadline(row, NOW, LIMITS, rule, done)
    if expected is None:
        assert t is None
        return
    assert t is not None
    to, events, values, republish, notify = expected
    assert t.to_state == to
    assert [(e.from_state, e.to_state, e.reason, e.attempt, e.source) for e in t.events] == events
    if values == "timeout":
        assert t.values["state"] == "COMPLETED" and t.values["reason"] == "timeout"
        assert t.outcomes == ("timeout",) and t.retry_in is None
    else:
        assert t.values == values
    assert t.republish == republish
    assert t.notify_routing is notify
    assert t.release_slot is None


def test_an_outcome_ends_a_held_deadline_and_a_retry_clears_it() -> None:
    held = row_in("QUEUED", lease_expires_at=NOW + 30)
    t = lifecycle.outcome(held, "ROUTING", None, 1, NOW, Rule())
    assert t is not None and t.values["lease_expires_at"] is None
    assert t.values["lease_owner"] is None
    leased = row_in("QUEUED", queued_at=NOW - 3600, lease_expires_at=NOW)
    t = lifecycle.deadline(leased, NOW, LIMITS, Rule(), 0)
    assert t is not None and t.outcomes == ("timeout", "retry") and t.retry_in == 60.0
    assert t.values["lease_owner"] is None and t.values["lease_expires_at"] is None


@pytest.mark.parametrize(
    ("row", "looked_up"),
    [
        (row_in("QUEUED", queued_at=NOW - 3600), True),  # may be retried
        (row_in("QUEUED", queued_at=NOW - 3600, attempt=3), False),  # the last attempt
        (row_in("QUEUED", queued_at=NOW - 60, updated_at=NOW - 60), False),  # a republish
        (row_in("ROUTING", updated_at=NOW - 900), False),  # never retried
    ],
)
async def test_the_retry_policy_is_looked_up_only_for_a_queued_timeout(
    row: Row, looked_up: bool
) -> None:
    calls: list[tuple[str, str]] = []

    async def rule(tenant_id: str, service: str) -> Rule:
        calls.append((tenant_id, service))
        return Rule()

    t = await Lifecycle(rule).deadline(row, NOW, LIMITS, 0)
    assert t is not None
    assert calls == ([("t1", "sales")] if looked_up else [])
    if looked_up:
        assert t.to_state == "SCHEDULED"

"""The JSON shape of the statistics answer."""

from __future__ import annotations

from typing import Any

from dialback.callbacks.views import wait_time
from dialback.kit.timefmt import utc_iso
from dialback.statistics.service import QueueStatistics, Snapshot


def queue(q: QueueStatistics) -> dict[str, Any]:
    """One virtual queue's statistics; an unknown queue carries only its message."""
    ewt = wait_time(q.name, q.wait)
    if q.counts is None:
        return ewt
    return {
        "virtualQueue": q.name,
        "message": "ok",
        "callbacks": {state.lower(): n for state, n in q.counts.items()},
        "completed": q.completed,
        "estimatedWaitTime": ewt["estimatedWaitTime"],
        "resultCode": ewt["resultCode"],
        "ewtMessage": ewt["message"],
    }


def statistics(s: Snapshot, age: int) -> dict[str, Any]:
    """The snapshot with when it was computed and how old it is."""
    return {
        "asOf": utc_iso(s.computed_at),
        "ageSeconds": age,
        "windowSeconds": s.window_seconds,
        "activeConsumers": s.active_consumers,
        "truncated": s.truncated,
        "virtualQueues": [queue(q) for q in s.queues],
    }

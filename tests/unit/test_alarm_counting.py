"""What one increment of an alarm is: CB_SUBMIT_FAILED a callback attempt (not each retry of
its publish), RBAC_CREATE_VQ_PROXY_ERROR a provisioning attempt, retried with a growing pause."""

from __future__ import annotations

import asyncio
import time

import pytest
from testbed.metrics_parse import parse, value

from dialback.container import Container
from dialback.monitor import monitor as monitor_module
from dialback.observability.events import Events
from tests.support.stack import wait_for


def test_a_callback_attempt_counts_once_however_often_its_publish_fails() -> None:
    events = Events()
    batch = [("cb1", 1), ("cb2", 1), ("cb3", 1)]
    for _ in range(50):  # fifty retries of the same batch during an outage
        events.submit_failed(batch)
    assert events.metrics.CB_SUBMIT_FAILED.value(()) == 3
    events.submit_failed([("cb1", 1), ("cb4", 1)])  # the next batch overlaps
    assert events.metrics.CB_SUBMIT_FAILED.value(()) == 4
    events.submitted(batch)  # the outage is over for these
    events.submit_failed([("cb1", 1)])  # a new failure of a published attempt counts again
    events.submit_failed([("cb2", 2)])  # and so does a later attempt
    assert events.metrics.CB_SUBMIT_FAILED.value(()) == 6


def test_the_memory_of_failing_attempts_is_bounded() -> None:
    events = Events()
    events.MAX_FAILING_SUBMITS = 10
    events.submit_failed([(f"cb{i}", 1) for i in range(8)])
    events.submit_failed([(f"cb{i}", 1) for i in range(8, 12)])
    assert events.metrics.CB_SUBMIT_FAILED.value(()) == 12
    assert len(events._failing_submits) <= 10


async def test_provisioning_is_retried_with_a_growing_pause_each_failure_counted_once(
    embedded: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitor_module, "PROVISION_RETRY_FIRST_SECONDS", 0.02)
    monkeypatch.setattr(monitor_module, "PROVISION_RETRY_MAX_SECONDS", 0.16)
    attempts: list[float] = []

    async def ensure_groups() -> None:
        attempts.append(time.monotonic())
        raise ConnectionError("routing Redis refuses")

    monkeypatch.setattr(embedded.transport, "ensure_groups", ensure_groups)
    await embedded.start()
    await asyncio.sleep(1.0)
    rbac = value(parse(embedded.metrics.registry.render()), "RBAC_CREATE_VQ_PROXY_ERROR")
    assert rbac == len(attempts)
    # Pauses 0.02, 0.04, 0.08, then 0.16 s apart: about 9 in a second, where a fixed pause
    # at the first delay would have made 50. (The container's own start-up attempt counts too.)
    assert 5 <= len(attempts) <= 12, attempts
    gaps = [b - a for a, b in zip(attempts[-4:-1], attempts[-3:], strict=True)]
    assert all(g >= 0.15 for g in gaps), gaps
    assert embedded.monitor is not None and embedded.monitor.healthy

    monkeypatch.undo()
    # Provisioning works again: the counter stops.
    await wait_for(lambda: _settled(embedded, rbac), timeout=3)


async def _settled(c: Container, before: float) -> bool:
    await asyncio.sleep(0.4)
    return value(parse(c.metrics.registry.render()), "RBAC_CREATE_VQ_PROXY_ERROR") == before


async def test_a_cancel_that_cannot_be_announced_counts_once_and_one_that_can_does_not() -> None:
    from dialback.routing.cancels import announce_cancel
    from dialback.routing.transport import MemoryTransport

    class Down(MemoryTransport):
        async def publish_cancel(self, callback_id: str, attempt: int) -> None:
            raise ConnectionError("routing Redis unreachable")

    events = Events()
    assert await announce_cancel(MemoryTransport(), events, "cb1", 1) is True
    assert events.metrics.CB_SUBMIT_FAILED.value(()) == 0
    assert await announce_cancel(Down(), events, "cb1", 1) is False
    assert events.metrics.CB_SUBMIT_FAILED.value(()) == 1

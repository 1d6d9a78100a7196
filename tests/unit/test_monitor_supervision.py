"""The monitor supervises its loops: a dead one stops the monitor, counts UNCAUGHT_EXCEPTION
and fails liveness; ``stop`` stops the loops in parallel within one timeout."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from testbed.metrics_parse import parse, value

from dialback.app import create_internal_app
from dialback.container import Container
from dialback.monitor.monitor import _STOP_TIMEOUT_SECONDS, CallbackMonitor
from tests.support.stack import wait_for


async def test_a_dead_outcome_loop_stops_the_monitor_counts_an_alarm_and_fails_liveness(
    embedded: Container,
) -> None:
    mon = embedded.monitor
    assert mon is not None

    bug = asyncio.Event()

    async def dies() -> None:
        await bug.wait()
        raise RuntimeError("simulated bug in the outcome loop")

    mon._outcome_loop = dies  # type: ignore[method-assign]
    await embedded.start()
    internal = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_internal_app(embedded)), base_url="http://i"
    )
    try:
        assert (await internal.get("/health/live")).status_code == 200
        bug.set()

        async def running() -> list[str]:
            return [t.get_name() for t in mon._tasks if not t.done()]

        async def stopped() -> bool:
            return not mon.healthy and not await running()

        # The others stop by themselves, else are cancelled after the stop timeout.
        try:
            await wait_for(stopped, timeout=_STOP_TIMEOUT_SECONDS + 5)
        except AssertionError:
            raise AssertionError(f"healthy={mon.healthy}, running: {await running()}") from None
        assert mon.failed == "monitor-outcomes"
        alarms = value(parse(embedded.metrics.registry.render()), "UNCAUGHT_EXCEPTION")
        assert alarms == 1
        r = await internal.get("/health/live")
        assert r.status_code == 503
        assert r.json() == {"status": "stuck", "monitorFailed": "monitor-outcomes"}
    finally:
        await internal.aclose()


async def test_stop_ends_every_loop_within_one_overall_timeout(embedded: Container) -> None:
    mon = embedded.monitor
    assert isinstance(mon, CallbackMonitor)

    async def hangs() -> None:
        await asyncio.Event().wait()  # ignores the stop request

    mon._stats_loop = hangs  # type: ignore[method-assign]
    mon._outcome_loop = hangs  # type: ignore[method-assign]
    await embedded.start()
    started = time.monotonic()
    await mon.stop(timeout=0.3)
    elapsed = time.monotonic() - started
    # Two hanging loops cost one timeout, not one each; a clean stop is no failure.
    assert 0.3 <= elapsed < 0.55, elapsed
    assert mon.healthy and mon._tasks == []
    assert value(parse(embedded.metrics.registry.render()), "UNCAUGHT_EXCEPTION") == 0


async def test_a_dead_loop_cancels_a_loop_that_will_not_stop_and_names_it(
    embedded: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialback.monitor import monitor as monitor_module

    monkeypatch.setattr(monitor_module, "_STOP_TIMEOUT_SECONDS", 0.3)
    mon = embedded.monitor
    assert isinstance(mon, CallbackMonitor)

    async def dies() -> None:
        raise RuntimeError("simulated bug in the outcome loop")

    async def hangs() -> None:
        await asyncio.Event().wait()  # ignores the stop request

    mon._outcome_loop = dies  # type: ignore[method-assign]
    mon._stats_loop = hangs  # type: ignore[method-assign]
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    monitor_module.log.addHandler(handler)
    try:
        await embedded.start()
        assert mon._supervisor is not None
        await asyncio.wait_for(asyncio.shield(mon._supervisor), timeout=5)
    finally:
        monitor_module.log.removeHandler(handler)
    assert mon.failed == "monitor-outcomes"
    assert all(t.done() for t in mon._tasks)
    [stats] = [t for t in mon._tasks if t.get_name() == "monitor-stats"]
    assert stats.cancelled()
    [warning] = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert warning == "monitor loop monitor-stats did not stop within 0.3 s; cancelled"


def test_a_missing_consumer_group_is_recognised_by_type() -> None:
    from redis.exceptions import ResponseError

    from dialback.routing.transport import GroupMissing, _typed

    gone = _typed(ResponseError("NOGROUP No such key 'CallbackOutcomeStream' or consumer group"))
    assert isinstance(gone, GroupMissing) and isinstance(gone, ResponseError)
    assert not isinstance(_typed(ResponseError("ERR something else")), GroupMissing)


async def test_a_missing_consumer_group_is_provisioned_again_without_an_alarm(
    embedded: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialback.routing.transport import GroupMissing

    transport = embedded.transport
    read = transport.read_outcomes
    provisioned: list[float] = []
    failures = [GroupMissing("NOGROUP No such key or consumer group")]

    async def read_outcomes(consumer: str, count: int, block_ms: int) -> list:
        if failures:
            raise failures.pop()
        return await read(consumer, count, min(block_ms, 50))

    async def ensure_groups() -> None:
        provisioned.append(time.monotonic())

    monkeypatch.setattr(transport, "read_outcomes", read_outcomes)
    monkeypatch.setattr(transport, "ensure_groups", ensure_groups)
    await embedded.start()
    # Once at start, once more after the NOGROUP: the loop carries on.
    await wait_for(lambda: _true(len(provisioned) >= 2), timeout=5)
    assert embedded.monitor is not None and embedded.monitor.healthy
    assert value(parse(embedded.metrics.registry.render()), "UNCAUGHT_EXCEPTION") == 0


async def _true(v: bool) -> bool:
    return v


async def test_a_part_that_will_not_stop_is_logged_and_left_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dialback import container

    monkeypatch.setattr(container, "STOP_BOUND_SECONDS", 0.2)
    stuck = asyncio.Event()

    async def never() -> None:
        while not stuck.is_set():  # swallows cancellation: a stop must not wait for it forever
            try:
                await stuck.wait()
            except asyncio.CancelledError:
                continue

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("dialback.runtime").addHandler(handler)
    try:
        await asyncio.wait_for(container._bounded_stop("stuck part", never), timeout=5)
    finally:
        logging.getLogger("dialback.runtime").removeHandler(handler)
    [record] = [r for r in records if r.levelno >= logging.ERROR]
    assert "the stuck part did not stop within 0 s" in record.getMessage()
    assert "stop stuck part at " in record.getMessage()
    stuck.set()
    await asyncio.sleep(0)

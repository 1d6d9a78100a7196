"""The brute-force limiter: windows, Retry-After, per-kind and per-address independence, blocks
that refuse valid credentials too, expiry, metrics and logs."""

from __future__ import annotations

import logging

import pytest

from dialback.identity.bruteforce import (
    KINDS,
    TOO_MANY_MESSAGE,
    AttemptLimiter,
    TooManyAttempts,
)
from dialback.kit.errors import ApiError
from dialback.observability.catalogue import AUTH_KINDS
from dialback.observability.events import Events
from dialback.observability.logging import JsonFormatter
from dialback.throttle.counters import Counters, MemoryCounters
from tests.support.stack import make_settings

WINDOW = 300
START = 1_000_020.25  # 1000020.25 // 300 = 3333 -> this window ends at 1000200


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(
    clock: Clock, counters: Counters | None = None, events: Events | None = None, **kw: int
) -> AttemptLimiter:
    settings = make_settings(
        auth_failure_limit=kw.get("limit", 20),
        login_failure_limit=kw.get("login_limit", 10),
        auth_failure_window_seconds=WINDOW,
    )
    return AttemptLimiter(counters or MemoryCounters(), events or Events(), settings, clock=clock)


async def fail(lim: AttemptLimiter, kind: str, address: str, n: int) -> None:
    """``n`` failures that must all stay within the limit."""
    for _ in range(n):
        await lim.failed(kind, address, "invalid x-api-key")


def sample(events: Events, name: str, kind: str) -> float:
    return events.metrics.registry.get(name).value((kind,))


def test_kinds_are_the_catalogues_and_too_many_is_a_429_api_error() -> None:
    assert KINDS == AUTH_KINDS == ("api_key", "admin_token", "login")
    err = TooManyAttempts(42)
    assert isinstance(err, ApiError)
    assert (err.status, err.retry_after, dict(err.headers or {})) == (
        429,
        42,
        {"Retry-After": "42"},
    )
    assert err.message == f"{TOO_MANY_MESSAGE}; retry in 42 s"


async def test_the_failure_past_the_limit_is_refused_with_the_window_end_as_retry_after() -> None:
    clock = Clock()
    lim = limiter(clock)
    await fail(lim, "api_key", "10.1.1.1", 20)  # 20 allowed: no exception
    assert not lim.blocking
    await lim.check("api_key", "10.1.1.1")
    with pytest.raises(TooManyAttempts) as refused:
        await lim.failed("api_key", "10.1.1.1", "invalid x-api-key")
    # The window [1000000, 1000200) ends in 179.75 s: Retry-After rounds up.
    assert refused.value.retry_after == 180
    assert lim.blocking


async def test_a_blocked_address_is_refused_even_with_valid_credentials_until_the_window_ends() -> (
    None
):
    clock = Clock()
    lim = limiter(clock)
    await fail(lim, "api_key", "10.1.1.1", 20)
    with pytest.raises(TooManyAttempts):
        await fail(lim, "api_key", "10.1.1.1", 1)
    # check() is what a request with good credentials passes through: refused too, with the
    # Retry-After shrinking as the window runs out.
    clock.now += 100
    with pytest.raises(TooManyAttempts) as refused:
        await lim.check("api_key", "10.1.1.1")
    assert refused.value.retry_after == 80
    clock.now = 1_000_199.5
    with pytest.raises(TooManyAttempts) as refused:
        await lim.check("api_key", "10.1.1.1")
    assert refused.value.retry_after == 1
    # The window is over: allowed again, and the next window counts from zero.
    clock.now = 1_000_200.0
    await lim.check("api_key", "10.1.1.1")
    assert not lim.blocking
    await fail(lim, "api_key", "10.1.1.1", 20)
    with pytest.raises(TooManyAttempts) as refused:
        await fail(lim, "api_key", "10.1.1.1", 1)
    assert refused.value.retry_after == WINDOW


async def test_failures_in_the_previous_window_do_not_count() -> None:
    clock = Clock()
    lim = limiter(clock)
    await fail(lim, "api_key", "10.1.1.1", 20)
    clock.now = 1_000_200.0  # the next window: the 20 are forgotten
    await fail(lim, "api_key", "10.1.1.1", 20)
    with pytest.raises(TooManyAttempts):
        await fail(lim, "api_key", "10.1.1.1", 1)


async def test_kinds_and_addresses_are_independent() -> None:
    clock = Clock()
    lim = limiter(clock)
    await fail(lim, "api_key", "10.1.1.1", 20)
    with pytest.raises(TooManyAttempts):
        await fail(lim, "api_key", "10.1.1.1", 1)
    # The same address is not blocked for the other kinds, nor another address for this kind.
    await lim.check("admin_token", "10.1.1.1")
    await lim.check("login", "10.1.1.1")
    await lim.check("api_key", "10.1.1.2")
    await fail(lim, "admin_token", "10.1.1.1", 20)
    await fail(lim, "api_key", "10.1.1.2", 20)
    await fail(lim, "login", "10.1.1.1", 10)
    with pytest.raises(TooManyAttempts):
        await fail(lim, "admin_token", "10.1.1.1", 1)
    with pytest.raises(TooManyAttempts):
        await fail(lim, "api_key", "10.1.1.2", 1)


@pytest.mark.parametrize(("kind", "limit"), [("api_key", 20), ("admin_token", 20), ("login", 10)])
async def test_each_kind_has_its_limit(kind: str, limit: int) -> None:
    clock = Clock()
    lim = limiter(clock)
    await fail(lim, kind, "192.0.2.7", limit)
    with pytest.raises(TooManyAttempts):
        await fail(lim, kind, "192.0.2.7", 1)
    with pytest.raises(TooManyAttempts):
        await lim.check(kind, "192.0.2.7")
    for other in KINDS:
        if other != kind:
            await lim.check(other, "192.0.2.7")


async def test_replicas_share_the_count_and_learn_a_block_at_their_first_failure() -> None:
    clock = Clock()
    shared = MemoryCounters()  # stands for dialback's Redis (the integration test uses one)
    one, two = limiter(clock, shared), limiter(clock, shared)
    await fail(one, "api_key", "10.9.9.9", 10)
    await fail(two, "api_key", "10.9.9.9", 10)
    with pytest.raises(TooManyAttempts):
        await fail(one, "api_key", "10.9.9.9", 1)
    # Replica two has not seen the block yet; its first failure from the address is over the
    # shared count, so it is refused and blocks there too.
    await two.check("api_key", "10.9.9.9")
    with pytest.raises(TooManyAttempts):
        await fail(two, "api_key", "10.9.9.9", 1)
    with pytest.raises(TooManyAttempts):
        await two.check("api_key", "10.9.9.9")


async def test_metrics_count_failures_and_refusals_by_kind() -> None:
    clock = Clock()
    events = Events()
    lim = limiter(clock, events=events, login_limit=2)
    for kind in KINDS:  # every series exists at 0 from the start
        assert sample(events, "ges_auth_failures_total", kind) == 0
        assert sample(events, "ges_auth_rate_limited_total", kind) == 0
    await fail(lim, "login", "10.1.1.1", 2)
    with pytest.raises(TooManyAttempts):
        await fail(lim, "login", "10.1.1.1", 1)
    for _ in range(4):
        with pytest.raises(TooManyAttempts):
            await lim.check("login", "10.1.1.1")
    assert sample(events, "ges_auth_failures_total", "login") == 3
    assert sample(events, "ges_auth_rate_limited_total", "login") == 5
    assert sample(events, "ges_auth_failures_total", "api_key") == 0
    assert sample(events, "ges_auth_rate_limited_total", "api_key") == 0


async def test_failures_are_logged_with_address_and_kind() -> None:
    clock = Clock()
    lim = limiter(clock, login_limit=1)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("dialback.identity")
    logger.addHandler(handler)
    try:
        await lim.failed("login", "2001:db8::7", "wrong password")
        with pytest.raises(TooManyAttempts):
            await lim.failed("login", "2001:db8::7", "wrong password")
    finally:
        logger.removeHandler(handler)
    warnings = [r for r in records if r.levelno >= logging.INFO]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.WARNING]
    first, second = warnings
    assert first.getMessage() == (
        "failed login authentication (wrong password): 1 of 1 allowed from this address in "
        "this 300 s window"
    )
    assert "over its limit" in second.getMessage()
    assert "refused for 180 s" in second.getMessage()
    for record in warnings:
        assert (record.clientAddress, record.authKind) == ("2001:db8::7", "login")


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8::7", "2001:db8::7"),
        ("192.168.100.200", "192.168.100.200"),
        # Not an IP address (a forged X-Forwarded-For hop): masked like any text.
        ("+1 415 555 0123", "+1 **********23"),
    ],
)
def test_the_client_address_field_is_logged_unmasked_only_when_it_is_an_ip(
    address: str, shown: str
) -> None:
    record = logging.LogRecord("dialback.identity", logging.WARNING, "", 0, "m", None, None)
    record.clientAddress = address
    record.note = "from 203.0.113.9"  # elsewhere an address is masked as phone-number-like
    ev = JsonFormatter(4096).event(record)
    assert ev["clientAddress"] == shown
    assert ev["note"] != "from 203.0.113.9"


async def test_long_addresses_are_cut_and_the_blocked_table_is_bounded() -> None:
    clock = Clock()
    counters = MemoryCounters()
    lim = limiter(clock, counters, limit=1)
    lim.MAX_BLOCKED = 3
    long = "x" * 200
    await lim.failed("api_key", long)
    with pytest.raises(TooManyAttempts):
        await lim.failed("api_key", long)
    assert all(len(key) <= len("auth:api_key::3333") + 64 for key, _v, _l in counters.take())
    for i in range(5):
        address = f"10.0.0.{i}"
        await lim.failed("api_key", address)
        with pytest.raises(TooManyAttempts):
            await lim.failed("api_key", address)
    assert len(lim._blocked) == 3
    # The newest blocks are kept.
    with pytest.raises(TooManyAttempts):
        await lim.check("api_key", "10.0.0.4")


async def test_no_counter_is_touched_by_check() -> None:
    class Counting(MemoryCounters):
        calls = 0

        async def incr_many(self, keys: list[tuple[str, int]]) -> list[int]:
            Counting.calls += 1
            return await super().incr_many(keys)

    clock = Clock()
    lim = limiter(clock, Counting(), limit=1)
    for _ in range(50):
        await lim.check("api_key", "10.1.1.1")
    assert Counting.calls == 0
    await lim.failed("api_key", "10.1.1.1")
    with pytest.raises(TooManyAttempts):
        await lim.failed("api_key", "10.1.1.1")
    for _ in range(50):
        with pytest.raises(TooManyAttempts):
            await lim.check("api_key", "10.1.1.1")
    assert Counting.calls == 2

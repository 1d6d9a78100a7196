"""Brute-force limits on the public API over real HTTP: two replicas (two runtimes, each
served by uvicorn on its own loopback port) on one PostgreSQL and one real Redis, client
addresses varied through X-Forwarded-For from a trusted proxy (127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import redis.asyncio as aioredis
import uvicorn
from testbed.metrics_parse import parse, value
from testbed.servers import free_port

from dialback.app import create_public_app
from dialback.identity.bruteforce import TOO_MANY_MESSAGE
from dialback.server import listener_config
from tests.support.public_api import assert_error
from tests.support.stack import SettingsFactory, Stack, started_stack

CREATE = "/engagement/v3/callbacks/create"
RETRIEVE = "/engagement/v3/callbacks/retrieve"
LIMIT = 6
WINDOW = 3600
ATTACKER, NEIGHBOUR, CUSTOMER = "203.0.113.10", "203.0.113.11", "198.51.100.7"
QUIET = {
    # No health check touches dialback's Redis while a test counts its commands.
    "health_check_min_seconds": 600.0,
    "health_check_max_seconds": 600.0,
    "simulator": "off",
    "monitor_enabled": False,
}


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (pytest owns the process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(stack: Stack) -> AsyncIterator[str]:
    """The runtime's public app on a free loopback port, over real HTTP; its base URL."""
    port = free_port()
    server = _Server(listener_config(create_public_app(stack.rt), port, stack.rt.settings))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


async def clear_of_window_end() -> None:
    """Sleep past the window's end when it is near: every count of a test lands in one window."""
    left = WINDOW - time.time() % WINDOW
    if left < 30:
        await asyncio.sleep(left + 0.5)


def booking(i: int) -> dict[str, Any]:
    return {"serviceName": "sales", "phoneNumber": f"+1415555{i:04d}"}


async def auth_samples(stack: Stack) -> dict[str, float]:
    samples = parse((await stack.internal.get("/metrics")).text)
    out = {}
    for name in ("ges_auth_failures_total", "ges_auth_rate_limited_total"):
        for kind in ("api_key", "admin_token", "login"):
            found = value(samples, name, kind=kind)
            assert found is not None, f"{name}{{kind={kind}}} is not exposed"
            out[f"{name}/{kind}"] = found
    return out


def as_from(address: str, key: str | None = None) -> dict[str, str]:
    headers = {"x-forwarded-for": address}
    if key is not None:
        headers["x-api-key"] = key
    return headers


def assert_refused(r: httpx.Response) -> int:
    """A brute-force 429: the envelope with its corrId, the message and Retry-After agreeing."""
    body = assert_error(r, 429, TOO_MANY_MESSAGE)
    retry_after = int(r.headers["retry-after"])
    assert 0 < retry_after <= WINDOW
    assert body["status"]["message"] == f"{TOO_MANY_MESSAGE}; retry in {retry_after} s"
    return retry_after


async def test_bad_keys_from_one_address_are_limited_across_replicas_and_nobody_else_is(
    settings_with: SettingsFactory, redis_url: str
) -> None:
    settings = settings_with(
        trusted_proxies="127.0.0.1",
        auth_failure_limit=LIMIT,
        auth_failure_window_seconds=WINDOW,
        **QUIET,
    )
    await clear_of_window_end()
    async with (
        started_stack(settings) as one,
        started_stack(settings) as two,
        serving(one) as url_one,
        serving(two) as url_two,
        httpx.AsyncClient(timeout=10) as http,
    ):
        key = await one.tenant("acme")
        before_one, before_two = await auth_samples(one), await auth_samples(two)

        # LIMIT failures, half through each replica: every one a plain 401. The missing key
        # counts as much as a wrong one.
        for i in range(LIMIT):
            base = (url_one, url_two)[i % 2]
            guess = None if i == 0 else f"guess-{i}"
            r = await http.post(base + CREATE, json=booking(i), headers=as_from(ATTACKER, guess))
            assert_error(r, 401, "missing x-api-key" if i == 0 else "invalid x-api-key")

        # The shared count is at the limit: the next failure, on either replica, is a 429.
        r = await http.post(
            url_one + CREATE, json=booking(0), headers=as_from(ATTACKER, "guess-next")
        )
        retry_after = assert_refused(r)
        assert retry_after > WINDOW - time.time() % WINDOW - 5
        # Now the right key from that address is refused too (or the limit would tell which
        # guess was right), on the fast create route and on a FastAPI-routed one alike.
        r = await http.post(url_one + CREATE, json=booking(1), headers=as_from(ATTACKER, key))
        assert_refused(r)
        r = await http.post(
            url_one + RETRIEVE,
            json={"id": "00000000-0000-0000-0000-000000000000"},
            headers=as_from(ATTACKER, key),
        )
        assert_refused(r)
        # Replica two had not refused this address yet: its first failure from it is over the
        # shared count, refused, and from then on the right key is refused there too.
        r = await http.post(url_two + CREATE, json=booking(2), headers=as_from(ATTACKER, "g2"))
        assert_refused(r)
        r = await http.post(url_two + CREATE, json=booking(3), headers=as_from(ATTACKER, key))
        assert_refused(r)

        # Another address is not affected: its bad key is a 401, not a 429.
        r = await http.post(url_one + CREATE, json=booking(4), headers=as_from(NEIGHBOUR, "x"))
        assert_error(r, 401, "invalid x-api-key")
        # A third address with the good key books through both replicas.
        for i, base in enumerate((url_one, url_two)):
            r = await http.post(base + CREATE, json=booking(10 + i), headers=as_from(CUSTOMER, key))
            assert r.status_code == 200, r.text
            assert r.json()["data"]["id"]

        # One counter in Redis per (kind, address, window), holding both replicas' failures.
        client = aioredis.from_url(redis_url, decode_responses=True)
        try:
            index = int(time.time() // WINDOW)
            name = f"dialback:auth:api_key:{ATTACKER}:{index}"
            assert await client.get(name) == str(LIMIT + 2)
            assert 0 < await client.ttl(name) <= WINDOW + 1
            assert await client.get(f"dialback:auth:api_key:{NEIGHBOUR}:{index}") == "1"
            assert await client.keys(f"dialback:auth:api_key:{CUSTOMER}:*") == []
        finally:
            await client.aclose()

        # The metrics moved on each replica by what that replica saw.
        after_one, after_two = await auth_samples(one), await auth_samples(two)
        moved_one = {k: after_one[k] - before_one[k] for k in after_one}
        moved_two = {k: after_two[k] - before_two[k] for k in after_two}
        # One: 3 of the first LIMIT, the one over the limit, the neighbour's; refused: the one
        # over the limit and the two right keys.
        assert moved_one == {
            "ges_auth_failures_total/api_key": LIMIT // 2 + 2,
            "ges_auth_failures_total/admin_token": 0,
            "ges_auth_failures_total/login": 0,
            "ges_auth_rate_limited_total/api_key": 3,
            "ges_auth_rate_limited_total/admin_token": 0,
            "ges_auth_rate_limited_total/login": 0,
        }
        assert moved_two == {
            "ges_auth_failures_total/api_key": LIMIT // 2 + 1,
            "ges_auth_failures_total/admin_token": 0,
            "ges_auth_failures_total/login": 0,
            "ges_auth_rate_limited_total/api_key": 2,
            "ges_auth_rate_limited_total/admin_token": 0,
            "ges_auth_rate_limited_total/login": 0,
        }


async def _command_calls(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name: int(s["calls"]) for name, s in stats.items() if name != "cmdstat_info"}


# What the booking throttle's script runs for each of its two counters (the tenant's window,
# the number's day): INCR, TTL, and EXPIRE for a new key.
SCRIPT_COMMANDS = {"cmdstat_evalsha", "cmdstat_incr", "cmdstat_ttl", "cmdstat_expire"}


def assert_only_booking_throttles(moved: dict[str, int], bookings: int) -> None:
    """Redis saw ``bookings`` throttle scripts of two counters each, and nothing else."""
    assert set(moved) <= SCRIPT_COMMANDS, moved
    assert moved["cmdstat_evalsha"] == bookings, moved
    assert moved["cmdstat_incr"] == moved["cmdstat_ttl"] == 2 * bookings, moved


async def test_good_keys_cost_no_redis_command_even_while_an_address_is_blocked(
    settings_with: SettingsFactory, redis_url: str
) -> None:
    settings = settings_with(
        trusted_proxies="127.0.0.1",
        auth_failure_limit=2,
        auth_failure_window_seconds=WINDOW,
        **QUIET,
    )
    await clear_of_window_end()
    async with (
        started_stack(settings) as stack,
        serving(stack) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        key = await stack.tenant("acme")
        client = aioredis.from_url(redis_url, decode_responses=True)
        try:

            async def creates(n: int, start: int) -> None:
                for i in range(start, start + n):
                    r = await http.post(
                        url + CREATE, json=booking(i), headers=as_from(CUSTOMER, key)
                    )
                    assert r.status_code == 200, r.text

            await creates(1, 0)  # the throttle's script is loaded
            before = await _command_calls(client)
            await creates(100, 1)
            after = await _command_calls(client)
            # Each booking is one EVALSHA (its throttle counters); nothing else.
            moved = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
            assert_only_booking_throttles(moved, 100)

            # Block an address: the good keys of everyone else still cost nothing more.
            for i in range(3):
                r = await http.post(
                    url + CREATE, json=booking(0), headers=as_from(ATTACKER, f"g{i}")
                )
                assert r.status_code == (401 if i < 2 else 429), r.text
            assert stack.rt.attempts.blocking
            before = await _command_calls(client)
            await creates(100, 200)
            after = await _command_calls(client)
            moved = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
            assert_only_booking_throttles(moved, 100)
            # And the blocked address's own attempts are refused without a command either.
            before = await _command_calls(client)
            for i in range(20):
                r = await http.post(url + CREATE, json=booking(i), headers=as_from(ATTACKER, "g"))
                assert_refused(r)
            assert await _command_calls(client) == before
        finally:
            await client.aclose()

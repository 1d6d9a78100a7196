"""Bad admin tokens are limited per client address (429 with Retry-After), counted and
audited; a good token from another address is unaffected."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dialback.identity.bruteforce import TOO_MANY_MESSAGE
from tests.support.stack import SettingsFactory, Stack, started_stack

A = "/admin/v1"
GOOD = "good-admin-token-000000001"
LIMIT = 4
ATTACKER, OPERATOR = "203.0.113.20", "198.51.100.20"


@pytest.fixture
async def stack(settings_with: SettingsFactory) -> AsyncIterator[Stack]:
    settings = settings_with(
        admin_tokens=f"ops:administrator:{GOOD}",
        auth_failure_limit=LIMIT,
        auth_failure_window_seconds=3600,
        trusted_proxies="127.0.0.1",
        simulator="off",
        monitor_enabled=False,
    )
    async with started_stack(settings) as s:
        yield s


def headers(token: str, address: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "x-forwarded-for": address}


async def test_bad_admin_tokens_from_one_address_are_limited(stack: Stack) -> None:
    statuses = []
    for n in range(LIMIT + 2):
        r = await stack.internal.get(f"{A}/tenants", headers=headers(f"guess-{n:020d}", ATTACKER))
        statuses.append(r.status_code)
    assert statuses == [401] * LIMIT + [429, 429]
    # Over the limit, the right token from that address is refused too: nothing tells the
    # attacker which guess was right.
    r = await stack.internal.get(f"{A}/tenants", headers=headers(GOOD, ATTACKER))
    assert r.status_code == 429
    body = r.json()
    assert body["status"]["message"].startswith(TOO_MANY_MESSAGE)
    assert body["status"]["corrId"] == r.headers["x-correlation-id"]
    assert 0 < int(r.headers["retry-after"]) <= 3600
    ok = await stack.internal.get(f"{A}/tenants", headers=headers(GOOD, OPERATOR))
    assert ok.status_code == 200, ok.text

    metrics = stack.rt.metrics
    assert metrics.ges_auth_failures_total.value(("admin_token",)) == LIMIT + 1
    assert metrics.ges_auth_rate_limited_total.value(("admin_token",)) >= 2
    failed = await stack.internal.get(
        f"{A}/audit",
        params={"action": "admin.authentication_failed", "limit": 50},
        headers=headers(GOOD, OPERATOR),
    )
    items = failed.json()["data"]["items"]
    assert len(items) == LIMIT and {e["address"] for e in items} == {ATTACKER}

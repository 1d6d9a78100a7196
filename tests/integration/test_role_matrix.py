"""Every admin route called with every role: allowed exactly when the role table says so, 403
naming the permission otherwise; tenant-scoped principals see and touch their tenants only."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialback.access_docs import admin_routes
from dialback.identity.roles import ROLE_PERMISSIONS, Role
from tests.support.stack import SettingsFactory, Stack, started_stack

A = "/admin/v1"
TOKENS = {
    Role.MONITOR: "monitor-token-0000000001",
    Role.SUPERVISOR: "supervisor-token-00000001",
    Role.DEVELOPER: "developer-token-000000001",
    Role.ADMINISTRATOR: "administrator-token-00001",
}
ACME_SUPERVISOR = "acme-supervisor-token-0001"
ACME_ADMIN = "acme-admin-token-000000001"
ACME_DEVELOPER = "acme-developer-token-00001"
ENTRIES = [
    *(f"{role.value}-bot:{role.value}:{token}" for role, token in TOKENS.items()),
    f"acme-sup:supervisor@acme:{ACME_SUPERVISOR}",
    f"acme-adm:administrator@acme:{ACME_ADMIN}",
    f"acme-dev:developer@acme:{ACME_DEVELOPER}",
]


@pytest.fixture
async def stack(settings_with: SettingsFactory) -> AsyncIterator[Stack]:
    settings = settings_with(admin_tokens=",".join(ENTRIES), simulator="off", monitor_enabled=False)
    async with started_stack(settings) as s:
        yield s


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def book(stack: Stack, key: str, **fields: Any) -> str:
    body = {
        "serviceName": "sales",
        "phoneNumber": "+1 415 555 0100",
        "desiredTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 7200)),
        **fields,
    }
    r = await stack.public.post(
        "/engagement/v3/callbacks/create", json=body, headers={"x-api-key": key}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["data"]["id"])


def url_of(path: str, callback_id: str) -> str:
    return (
        path.replace("{tenant}", "acme")
        .replace("{callback_id}", callback_id)
        .replace("{name}", "nosuch")
        .replace("{keyId}", "nosuch")
    )


def test_every_admin_route_requires_a_permission() -> None:
    routes = admin_routes()
    assert len(routes) >= 26
    missing = [f"{r.method} {r.path}" for r in routes if r.permission is None]
    assert missing == []


async def test_every_route_with_every_role(stack: Stack) -> None:
    key = await stack.tenant("acme")
    outcomes: dict[tuple[str, str], list[str]] = {}
    roles = (Role.MONITOR, Role.DEVELOPER, Role.SUPERVISOR, Role.ADMINISTRATOR)
    for n, role in enumerate(roles):
        # A fresh callback per role: a supervisor's cancel or an administrator's erasure must
        # not turn the next role's call into a 404 that hides a wrong 403.
        callback_id = await book(stack, key, phoneNumber=f"+1 415 555 012{n}")
        for route in admin_routes():
            assert route.permission is not None
            allowed = route.permission in ROLE_PERMISSIONS[role]
            kwargs: dict[str, Any] = {"headers": auth(TOKENS[role])}
            if route.method in ("POST", "PUT", "PATCH"):
                kwargs["json"] = {}
            r = await stack.internal.request(
                route.method, url_of(route.path, callback_id), **kwargs
            )
            seen = f"{route.method} {route.path} as {role.value}: {r.status_code} {r.text[:200]}"
            assert r.status_code != 401, seen
            if allowed:
                assert r.status_code != 403, seen
                assert r.status_code < 500, seen
            else:
                assert r.status_code == 403, seen
                body = r.json()
                assert route.permission.value in body["status"]["message"], seen
                assert body["status"]["corrId"] == r.headers["x-correlation-id"]
            outcomes.setdefault((route.method, route.path), []).append(str(r.status_code))
    assert len(outcomes) == len(admin_routes())


async def test_no_credential_or_a_wrong_one_is_401(stack: Stack) -> None:
    for headers in ({}, auth("not-a-configured-token-at-all"), auth("x" * 600)):
        r = await stack.internal.get(f"{A}/tenants", headers={"authorization": ""} | headers)
        assert r.status_code == 401, r.text
        assert r.json()["status"]["corrId"] == r.headers["x-correlation-id"]


async def test_a_scoped_principal_sees_and_acts_on_its_tenants_only(stack: Stack) -> None:
    acme_key = await stack.tenant("acme")
    beta_key = await stack.tenant("beta")
    acme_cb = await book(stack, acme_key)
    beta_cb = await book(stack, beta_key, phoneNumber="+1 415 555 0111")
    sup = auth(ACME_SUPERVISOR)

    listed = (await stack.internal.get(f"{A}/callbacks", headers=sup)).json()["data"]
    assert [c["id"] for c in listed["items"]] == [acme_cb]
    everyone = await stack.internal.get(f"{A}/callbacks", headers=auth(TOKENS[Role.MONITOR]))
    assert {c["id"] for c in everyone.json()["data"]["items"]} == {acme_cb, beta_cb}

    r = await stack.internal.get(f"{A}/callbacks?tenant=beta", headers=sup)
    assert r.status_code == 403 and "outside your scope" in r.text
    # Another tenant's callback by id: 404, and its tenant's name is not given away.
    for method, path in (
        ("GET", f"{A}/callbacks/{beta_cb}"),
        ("POST", f"{A}/callbacks/{beta_cb}/cancel"),
        ("POST", f"{A}/callbacks/{beta_cb}/recreate"),
    ):
        r = await stack.internal.request(method, path, headers=sup)
        assert r.status_code == 404, r.text
        assert "beta" not in r.text
    r = await stack.internal.post(
        f"{A}/callbacks/{beta_cb}/reschedule",
        headers=sup,
        json={
            "desiredTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 9000))
        },
    )
    assert r.status_code == 404, r.text
    r = await stack.internal.delete(f"{A}/callbacks/{beta_cb}", headers=auth(ACME_ADMIN))
    assert r.status_code == 404, r.text
    beta = await stack.internal.get(f"{A}/callbacks/{beta_cb}", headers=auth(TOKENS[Role.MONITOR]))
    assert beta.json()["data"]["callbackState"] == "SCHEDULED"

    r = await stack.internal.post(f"{A}/callbacks/{acme_cb}/cancel", headers=sup)
    assert r.status_code == 200, r.text

    tenants = (await stack.internal.get(f"{A}/tenants", headers=sup)).json()["data"]
    assert [t["name"] for t in tenants] == ["acme"]
    for path in (
        f"{A}/tenants/beta",
        f"{A}/tenants/beta/services",
        f"{A}/tenants/beta/callin-groups",
    ):
        r = await stack.internal.get(path, headers=sup)
        assert r.status_code == 403, r.text
        assert "outside the scope" in r.json()["status"]["message"]
    r = await stack.internal.get(f"{A}/call-in/requests?tenant=beta", headers=sup)
    assert r.status_code == 403

    # What belongs to no single tenant needs an operator of every tenant.
    adm = auth(ACME_ADMIN)
    r = await stack.internal.post(f"{A}/tenants", headers=adm, json={"name": "gamma"})
    assert r.status_code == 403 and "every tenant" in r.text
    r = await stack.internal.put(
        f"{A}/logging", headers=auth(ACME_DEVELOPER), json={"level": "debug"}
    )
    assert r.status_code == 403
    r = await stack.internal.get(f"{A}/erasure-audit", headers=adm)
    assert r.status_code == 403
    # ... while within its tenant a scoped administrator administers.
    r = await stack.internal.post(f"{A}/tenants/acme/api-keys", headers=adm, json={"name": "ops"})
    assert r.status_code == 201, r.text
    r = await stack.internal.post(f"{A}/tenants/beta/api-keys", headers=adm, json={"name": "ops"})
    assert r.status_code == 403


async def test_user_data_only_for_the_roles_that_may_see_it(stack: Stack) -> None:
    key = await stack.tenant("acme")
    cb = await book(stack, key, userData={"customer": "Ada"})
    for role, shown in (
        (Role.MONITOR, False),
        (Role.DEVELOPER, False),
        (Role.SUPERVISOR, True),
        (Role.ADMINISTRATOR, True),
    ):
        detail = await stack.internal.get(f"{A}/callbacks/{cb}", headers=auth(TOKENS[role]))
        body = detail.json()["data"]
        if shown:
            assert body["userData"] == {"customer": "Ada"}, role
            assert "userDataHidden" not in body
        else:
            assert body["userData"] is None, role
            assert body["userDataHidden"] is True
            assert "Ada" not in detail.text

"""The admin API accepts OIDC access tokens (bearer JWTs verified against the provider's keys)
with the roles and tenant scope mapped from their claims; refuses a wrong audience, an ID token
and an opaque token; audits who acted under the token's identity."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.support.oidc_provider import CLIENT_ID, OidcProvider, oidc_settings
from tests.support.stack import SettingsFactory, Stack, started_stack

A = "/admin/v1"
ROLE_MAP = "cc-admins=administrator,cc-supervisors=supervisor,cc-monitors=monitor"


@pytest.fixture
async def stack(
    settings_with: SettingsFactory, oidc_provider: OidcProvider
) -> AsyncIterator[Stack]:
    settings = settings_with(
        admin_tokens="",
        simulator="off",
        monitor_enabled=False,
        **oidc_settings(oidc_provider, oidc_role_map=ROLE_MAP, oidc_tenant_claim="tenants"),
    )
    async with started_stack(settings) as s:
        yield s


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def access_token(provider: OidcProvider, sub: str, claims: dict[str, object]) -> str:
    provider.set_user(sub, {"preferred_username": sub, **claims})
    return str(provider.issue_tokens(sub, client_id=CLIENT_ID)["access_token"])


async def test_an_access_token_acts_with_its_mapped_roles_and_scope(
    stack: Stack, oidc_provider: OidcProvider
) -> None:
    acme = await stack.tenant("acme")
    await stack.tenant("beta")
    r = await stack.public.post(
        "/engagement/v3/callbacks/create",
        json={
            "serviceName": "sales",
            "phoneNumber": "+1 415 555 0100",
            "desiredTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 7200)),
        },
        headers={"x-api-key": acme},
    )
    cb = r.json()["data"]["id"]
    sup = access_token(
        oidc_provider, "sam-bearer", {"groups": ["cc-supervisors"], "tenants": ["acme"]}
    )
    tenants = await stack.internal.get(f"{A}/tenants", headers=bearer(sup))
    assert tenants.status_code == 200, tenants.text
    assert [t["name"] for t in tenants.json()["data"]] == ["acme"]
    cancel = await stack.internal.post(f"{A}/callbacks/{cb}/cancel", headers=bearer(sup))
    assert cancel.status_code == 200, cancel.text
    # A supervisor may not create API keys; a monitor may not cancel.
    r = await stack.internal.post(f"{A}/tenants/acme/api-keys", headers=bearer(sup), json={})
    assert r.status_code == 403 and "apikeys.write" in r.text
    mon = access_token(oidc_provider, "mo-bearer", {"groups": ["cc-monitors"], "tenants": ["acme"]})
    r = await stack.internal.post(f"{A}/callbacks/{cb}/cancel", headers=bearer(mon))
    assert r.status_code == 403

    adm = access_token(
        oidc_provider, "ada-bearer", {"groups": ["cc-admins"], "tenants": ["acme", "beta"]}
    )
    entries = await stack.internal.get(
        f"{A}/audit", params={"callbackId": cb, "outcome": "ok"}, headers=bearer(adm)
    )
    [entry] = entries.json()["data"]["items"]
    assert entry["actor"] == "oidc:sam-bearer" and entry["actorKind"] == "oidc"


async def test_tokens_that_are_not_valid_access_tokens_are_refused(
    stack: Stack, oidc_provider: OidcProvider
) -> None:
    oidc_provider.set_user("eve-bearer", {"groups": ["cc-admins"]})
    issued = oidc_provider.issue_tokens("eve-bearer", client_id=CLIENT_ID)
    for token, fragment in (
        (issued["id_token"], "access token refused"),
        ("opaque-access-token-000000000000", "invalid admin token"),
        (issued["access_token"][:-4] + "AAAA", "access token refused"),
    ):
        r = await stack.internal.get(f"{A}/tenants", headers=bearer(token))
        assert r.status_code == 401, r.text
        assert fragment in r.json()["status"]["message"]
    # No dialback role in the claims: refused, with the reason.
    oidc_provider.set_user("nobody-bearer", {"groups": ["elsewhere"]})
    token = oidc_provider.issue_tokens("nobody-bearer", client_id=CLIENT_ID)["access_token"]
    r = await stack.internal.get(f"{A}/tenants", headers=bearer(token))
    assert r.status_code == 401 and "no dialback role" in r.text


async def test_an_access_token_for_another_audience_is_refused(
    settings_with: SettingsFactory, oidc_provider: OidcProvider
) -> None:
    settings = settings_with(
        admin_tokens="",
        simulator="off",
        monitor_enabled=False,
        **oidc_settings(oidc_provider, oidc_role_map=ROLE_MAP, oidc_audience="another-api"),
    )
    async with started_stack(settings) as s:
        oidc_provider.set_user("ana-bearer", {"groups": ["cc-admins"]})
        token = oidc_provider.issue_tokens("ana-bearer", client_id=CLIENT_ID)["access_token"]
        r = await s.internal.get(f"{A}/tenants", headers=bearer(token))
        assert r.status_code == 401
        assert "audience" in r.json()["status"]["message"]

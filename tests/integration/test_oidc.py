"""OIDC sign-in against a real provider (oidc-provider-mock in a subprocess, real HTTP).

The fixture ``oidc_provider`` (tests/conftest.py) and the helpers in
tests/support/oidc_provider.py are meant for reuse by the UI and admin API tests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from testbed.metrics_parse import parse, value

from dialback.identity.oidc import OidcClient, OidcRejected, OidcUnavailable
from dialback.identity.roles import Principal, Role
from dialback.observability.events import Events
from dialback.settings import Settings
from tests.support.oidc_provider import (
    REDIRECT_URI,
    OidcProvider,
    oidc_settings,
    sign_in,
)
from tests.support.stack import make_settings, started_stack

ROLE_MAP = "cb-admins=administrator,cb-supervisors=supervisor,cb-devs=developer"


def client_for(provider: OidcProvider, **overrides: Any) -> tuple[OidcClient, Events]:
    events = Events()
    settings = Settings(**oidc_settings(provider, **overrides))
    return OidcClient(settings, events), events


@pytest.fixture
async def client(oidc_provider: OidcProvider) -> AsyncIterator[OidcClient]:
    c, _ = client_for(oidc_provider, oidc_role_map=ROLE_MAP, oidc_tenant_claim="tenants")
    yield c
    await c.aclose()


async def full_sign_in(c: OidcClient, sub: str, *, nonce: str | None = None) -> Any:
    """authorization_request → the provider's page → the redirect back → complete()."""
    request = await c.authorization_request(REDIRECT_URI)
    back = await sign_in(request.url, sub)
    assert back["_redirect"] == REDIRECT_URI
    assert back["state"] == request.state
    return await c.complete(
        code=back["code"],
        redirect_uri=REDIRECT_URI,
        code_verifier=request.code_verifier,
        nonce=request.nonce if nonce is None else nonce,
    )


def forge(token: str, key: Any, header: dict[str, Any], **claims: Any) -> str:
    """``token``'s claims (changed by ``claims``) signed by ``key`` under ``header``."""
    payload = _part(token.split(".")[1])
    return jwt.encode(header, {**payload, **claims}, key)


def _part(segment: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return data


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


# -- the code flow -----------------------------------------------------------------------------


async def test_code_flow_maps_groups_to_roles_and_tenants(
    oidc_provider: OidcProvider, client: OidcClient
) -> None:
    oidc_provider.set_user(
        "u-alice",
        {
            "preferred_username": "alice",
            "email": "alice@example.com",
            "groups": ["cb-supervisors", "cb-devs", "marketing"],
            "tenants": ["acme", "globex"],
        },
    )
    request = await client.authorization_request(REDIRECT_URI)
    # PKCE S256 and a nonce on the request; state, nonce and verifier are fresh each time.
    assert "code_challenge_method=S256" in request.url and f"nonce={request.nonce}" in request.url
    again = await client.authorization_request(REDIRECT_URI)
    assert len({request.state, again.state, request.nonce, again.nonce}) == 4
    assert request.code_verifier != again.code_verifier and len(request.code_verifier) >= 43
    assert request.code_verifier not in request.url

    identity = await full_sign_in(client, "u-alice")
    assert identity.subject == "u-alice"
    assert identity.name == "alice" and identity.email == "alice@example.com"
    assert identity.roles == {Role.SUPERVISOR, Role.DEVELOPER}
    assert identity.tenants == {"acme", "globex"}
    assert identity.principal() == Principal(
        "oidc", "alice", frozenset({Role.SUPERVISOR, Role.DEVELOPER}), frozenset({"acme", "globex"})
    )
    assert identity.principal().subject == "u-alice"
    assert client.display_name == "Single sign-on"


async def test_keycloak_nested_role_claim_and_missing_tenant_claim(
    oidc_provider: OidcProvider,
) -> None:
    # Keycloak puts realm roles under realm_access.roles; with no map they are role names.
    oidc_provider.set_user(
        "u-kc",
        {
            "email": "kc@example.com",
            "realm_access": {"roles": ["Callback Administrator", "offline_access"]},
        },
    )
    c, _ = client_for(
        oidc_provider, oidc_role_claim="realm_access.roles", oidc_tenant_claim="tenants"
    )
    try:
        identity = await full_sign_in(c, "u-kc")
    finally:
        await c.aclose()
    assert identity.roles == {Role.ADMINISTRATOR}
    assert identity.name == "kc@example.com"  # no preferred_username, no name: the email
    # The tenant claim is configured but absent: an empty scope, not every tenant.
    assert identity.tenants == frozenset()
    assert not identity.principal().sees_tenant("acme")


async def test_a_single_string_claim_and_no_tenant_claim_configured(
    oidc_provider: OidcProvider,
) -> None:
    oidc_provider.set_user("u-str", {"role": "monitor"})
    c, _ = client_for(oidc_provider, oidc_role_claim="role")
    try:
        identity = await full_sign_in(c, "u-str")
    finally:
        await c.aclose()
    assert identity.roles == {Role.MONITOR} and identity.name == "u-str"
    assert identity.tenants is None and identity.principal().unscoped


async def test_identity_without_a_dialback_role_is_refused(
    oidc_provider: OidcProvider, client: OidcClient
) -> None:
    oidc_provider.set_user("u-bob", {"preferred_username": "bob", "groups": ["marketing"]})
    with pytest.raises(OidcRejected, match="bob has no dialback role"):
        await full_sign_in(client, "u-bob")


async def test_wrong_nonce_and_reused_code_are_refused(
    oidc_provider: OidcProvider, client: OidcClient
) -> None:
    oidc_provider.set_user("u-carol", {"groups": ["cb-admins"]})
    with pytest.raises(OidcRejected, match="nonce does not match"):
        await full_sign_in(client, "u-carol", nonce="someone-elses-nonce")

    request = await client.authorization_request(REDIRECT_URI)
    back = await sign_in(request.url, "u-carol")
    args = {
        "code": back["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": request.code_verifier,
        "nonce": request.nonce,
    }
    assert (await client.complete(**args)).roles == {Role.ADMINISTRATOR}
    with pytest.raises(OidcRejected, match=r"refused the authorization code \(invalid_grant\)"):
        await client.complete(**args)


# -- refused ID tokens -------------------------------------------------------------------------


async def test_forged_and_unsigned_id_tokens_are_refused(
    oidc_provider: OidcProvider, client: OidcClient
) -> None:
    oidc_provider.set_user("u-dave", {"groups": ["cb-admins"]})
    real = oidc_provider.issue_tokens("u-dave", nonce="n-1")["id_token"]
    assert (await client.verify_id_token(real, nonce="n-1")).roles == {Role.ADMINISTRATOR}

    kid = oidc_provider.jwks()["keys"][0]["kid"]
    mine = RSAKey.generate_key(2048)
    # Signed by a key of our own, under the provider's kid.
    forged = forge(real, mine, {"alg": "RS256", "kid": kid}, sub="u-admin")
    with pytest.raises(OidcRejected, match="signature does not verify"):
        await client.verify_id_token(forged, nonce="n-1")
    # Under a kid the provider does not publish (after one JWKS refresh).
    other = forge(real, mine, {"alg": "RS256", "kid": "not-the-providers"})
    with pytest.raises(OidcRejected, match="signed by a key the identity provider does not"):
        await client.verify_id_token(other, nonce="n-1")
    # The real token with its claims changed (the signature no longer covers them).
    head, _, sig = real.split(".")
    tampered = ".".join([head, _b64({**_part(real.split(".")[1]), "sub": "u-admin"}), sig])
    with pytest.raises(OidcRejected, match="signature does not verify"):
        await client.verify_id_token(tampered, nonce="n-1")
    # alg "none", and HS256 (a published key would be the HMAC secret): never accepted.
    unsigned = ".".join([_b64({"alg": "none"}), real.split(".")[1], ""])
    with pytest.raises(OidcRejected, match="signed with 'none', which is not allowed"):
        await client.verify_id_token(unsigned, nonce="n-1")
    hs = forge(real, OctKey.import_key(b"k" * 32), {"alg": "HS256"})
    with pytest.raises(OidcRejected, match="signed with 'HS256', which is not allowed"):
        await client.verify_id_token(hs, nonce="n-1")
    with pytest.raises(OidcRejected, match="not a signed JWT"):
        await client.verify_id_token("not-a-jwt", nonce="n-1")


async def test_id_token_for_another_client_is_refused(
    oidc_provider: OidcProvider, client: OidcClient
) -> None:
    oidc_provider.set_user("u-erin", {"groups": ["cb-admins"]})
    theirs = oidc_provider.issue_tokens("u-erin", client_id="another-app", nonce="n-2")
    assert _part(theirs["id_token"].split(".")[1])["aud"] == ["another-app"]
    with pytest.raises(
        OidcRejected, match="not meant for dialback: its audience is not 'dialback'"
    ):
        await client.verify_id_token(theirs["id_token"], nonce="n-2")


@pytest.fixture(scope="module")
def short_lived_provider() -> Iterator[OidcProvider]:
    provider = OidcProvider(token_max_age=1).start()
    yield provider
    provider.stop()


async def test_expired_id_token_is_refused_and_skew_is_bounded(
    short_lived_provider: OidcProvider,
) -> None:
    p = short_lived_provider
    p.set_user("u-frank", {"groups": ["cb-admins"]})
    strict, _ = client_for(p, oidc_role_map=ROLE_MAP, oidc_clock_skew_seconds=0)
    lenient, _ = client_for(p, oidc_role_map=ROLE_MAP, oidc_clock_skew_seconds=30)
    try:
        token = p.issue_tokens("u-frank", nonce="n-3")["id_token"]
        exp = _part(token.split(".")[1])["exp"]
        await asyncio.sleep(max(0.0, exp - time.time()) + 0.2)
        with pytest.raises(OidcRejected, match="the ID token has expired"):
            await strict.verify_id_token(token, nonce="n-3")
        # Within the configured skew the same provider-issued token still verifies.
        assert (await lenient.verify_id_token(token, nonce="n-3")).roles == {Role.ADMINISTRATOR}
    finally:
        await strict.aclose()
        await lenient.aclose()


# -- bearer access tokens ----------------------------------------------------------------------


async def test_access_tokens_verified_against_the_jwks(oidc_provider: OidcProvider) -> None:
    oidc_provider.set_user("u-gina", {"preferred_username": "gina", "groups": ["cb-supervisors"]})
    tokens = oidc_provider.issue_tokens("u-gina", nonce="n-4")
    access = tokens["access_token"]
    assert _part(access.split(".")[0])["typ"] == "at+jwt"
    c, _ = client_for(oidc_provider, oidc_role_map=ROLE_MAP)
    wrong, _ = client_for(oidc_provider, oidc_role_map=ROLE_MAP, oidc_audience="billing-api")
    by_client_id, _ = client_for(oidc_provider, oidc_role_map=ROLE_MAP, oidc_audience="")
    try:
        identity = await c.verify_access_token(access)
        assert identity.name == "gina" and identity.roles == {Role.SUPERVISOR}
        with pytest.raises(OidcRejected, match="its audience is not 'billing-api'"):
            await wrong.verify_access_token(access)
        with pytest.raises(OidcRejected, match="opaque access tokens cannot be verified"):
            await c.verify_access_token("2YotnFZFEjr1zCsicMWpAA")
        # An ID token carries the client id as its audience: still not an access token.
        with pytest.raises(OidcRejected, match="an ID token is not an access token"):
            await by_client_id.verify_access_token(tokens["id_token"])
        with pytest.raises(OidcRejected, match="signature does not verify"):
            kid = oidc_provider.jwks()["keys"][0]["kid"]
            await c.verify_access_token(
                forge(access, RSAKey.generate_key(2048), {"alg": "RS256", "kid": kid})
            )
    finally:
        for x in (c, wrong, by_client_id):
            await x.aclose()


# -- the client's credentials ------------------------------------------------------------------


@pytest.fixture
def registering_provider() -> Iterator[OidcProvider]:
    provider = OidcProvider(require_registration=True).start()
    yield provider
    provider.stop()


async def test_wrong_client_secret_counts_incorrect_client_credentials(
    registering_provider: OidcProvider,
) -> None:
    p = registering_provider
    p.set_user("u-hank", {"groups": ["cb-admins"]})
    client_id, secret = p.register_client(REDIRECT_URI)
    bad, bad_events = client_for(
        p, oidc_client_id=client_id, oidc_client_secret="wrong", oidc_role_map=ROLE_MAP
    )
    good, good_events = client_for(
        p, oidc_client_id=client_id, oidc_client_secret=secret, oidc_role_map=ROLE_MAP
    )
    try:
        assert bad_events.metrics.GWS_INCORRECT_CLIENT_CREDENTIALS.value() == 0
        with pytest.raises(OidcRejected, match="rejected dialback's client credentials") as err:
            await full_sign_in(bad, "u-hank")
        assert "wrong" not in str(err.value)  # the secret is never in the message
        assert bad_events.metrics.GWS_INCORRECT_CLIENT_CREDENTIALS.value() == 1
        assert (await full_sign_in(good, "u-hank")).roles == {Role.ADMINISTRATOR}
        assert good_events.metrics.GWS_INCORRECT_CLIENT_CREDENTIALS.value() == 0
    finally:
        await bad.aclose()
        await good.aclose()


async def test_client_secret_post_when_the_provider_does_not_support_basic() -> None:
    p = OidcProvider(require_registration=True, token_auth_methods="client_secret_post").start()
    try:
        p.set_user("u-post", {"groups": ["cb-admins"]})
        # A client registered for client_secret_post: the provider refuses Basic for it.
        client_id, secret = p.register_client(REDIRECT_URI, auth_method="client_secret_post")
        c, events = client_for(
            p, oidc_client_id=client_id, oidc_client_secret=secret, oidc_role_map=ROLE_MAP
        )
        try:
            assert (await full_sign_in(c, "u-post")).roles == {Role.ADMINISTRATOR}
            assert events.metrics.GWS_INCORRECT_CLIENT_CREDENTIALS.value() == 0
        finally:
            await c.aclose()
    finally:
        p.stop()


async def test_unknown_keys_refresh_the_jwks_at_most_once_per_interval(
    oidc_provider: OidcProvider,
) -> None:
    oidc_provider.set_user("u-kid", {"groups": ["cb-admins"]})
    real = oidc_provider.issue_tokens("u-kid", nonce="n-5")["id_token"]
    c, _ = client_for(oidc_provider, oidc_role_map=ROLE_MAP)
    mine = RSAKey.generate_key(2048)
    try:
        await c.check()
        before = oidc_provider.requests_to("/jwks")
        for i in range(8):
            forged = forge(real, mine, {"alg": "RS256", "kid": f"rotated-{i}"})
            with pytest.raises(OidcRejected, match="a key the identity provider does not publish"):
                await c.verify_id_token(forged, nonce="n-5")
        # Eight unknown keys, one refresh: forged tokens cannot flood the provider.
        assert oidc_provider.requests_to("/jwks") == before + 1
        assert (await c.verify_id_token(real, nonce="n-5")).roles == {Role.ADMINISTRATOR}
    finally:
        await c.aclose()


async def test_discovery_must_name_the_configured_issuer(oidc_provider: OidcProvider) -> None:
    # Configured with a trailing slash: the discovery document names the issuer without one,
    # and the issuer must match exactly (OIDC Discovery §4.3).
    c, _ = client_for(oidc_provider, oidc_issuer=oidc_provider.issuer + "/")
    try:
        with pytest.raises(OidcUnavailable, match=r"names the issuer 'http://127\.0\.0\.1:"):
            await c.check()
    finally:
        await c.aclose()


def test_settings_refuse_an_issuer_without_client_credentials() -> None:
    with pytest.raises(ValueError, match="DIALBACK_OIDC_CLIENT_ID or DIALBACK_OIDC_CLIENT_SECRET"):
        Settings(oidc_issuer="https://idp.example/realms/cc", oidc_client_id="dialback")
    with pytest.raises(ValueError, match="must be an https:// URL"):
        Settings(oidc_issuer="http://idp.example", oidc_client_id="a", oidc_client_secret="b")
    with pytest.raises(ValueError, match="unknown role 'boss'"):
        Settings(oidc_role_map="cb-admins=boss")
    assert Settings().oidc_issuer is None


# -- health: GWS_AUTH_STATUS -------------------------------------------------------------------


@pytest.fixture
def own_provider() -> Iterator[OidcProvider]:
    provider = OidcProvider().start()
    yield provider
    provider.stop()


def _embedded(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/dialback.db",
        data_dir=str(tmp_path),
        # Checks run when the test says (check_all), not on the background schedule.
        health_check_min_seconds=3600,
        health_check_max_seconds=3600,
        health_check_timeout_seconds=2.0,
        **overrides,
    )


async def test_gws_auth_status_follows_the_provider_and_keys_rotate(
    own_provider: OidcProvider, tmp_path: Path
) -> None:
    p = own_provider
    settings = _embedded(tmp_path, **oidc_settings(p, oidc_role_map=ROLE_MAP))
    async with started_stack(settings) as stack:
        rt = stack.rt
        assert rt.oidc is not None

        async def gauges() -> dict[str, float | None]:
            samples = parse((await stack.internal.get("/metrics")).text)
            return {n: value(samples, n) for n in ("GWS_AUTH_STATUS", "GES_HEALTH")}

        assert await gauges() == {"GWS_AUTH_STATUS": 0, "GES_HEALTH": 0}
        # With a provider, its alarm counters exist from the start (at 0).
        first = parse((await stack.internal.get("/metrics")).text)
        assert value(first, "GWS_INCORRECT_CLIENT_CREDENTIALS") == 0
        assert value(first, "GWS_SERVER_ERROR") == 0
        p.set_user("u-ivy", {"groups": ["cb-admins"]})
        assert (await full_sign_in(rt.oidc, "u-ivy")).roles == {Role.ADMINISTRATOR}
        old_kid = p.jwks()["keys"][0]["kid"]

        p.stop()
        await rt.health.check_all()
        assert await gauges() == {"GWS_AUTH_STATUS": 1, "GES_HEALTH": 1}
        r = await stack.internal.get("/health/ready")
        auth = r.json()["dependencies"]["gws_auth"]
        # Not required: the public callback API goes on without the operators' provider.
        assert r.status_code == 200
        assert auth["status"] == "down" and auth["required"] is False
        assert "unreachable" in auth["error"]
        # A sign-in coming back from the provider cannot be completed: a clear error (the UI
        # shows it as a page), not a crash.
        request = await rt.oidc.authorization_request(REDIRECT_URI)  # discovery is cached
        with pytest.raises(OidcUnavailable, match="identity provider is unreachable"):
            await rt.oidc.complete(
                code="a-code",
                redirect_uri=REDIRECT_URI,
                code_verifier=request.code_verifier,
                nonce=request.nonce,
            )
        assert value(parse((await stack.internal.get("/metrics")).text), "GWS_SERVER_ERROR") >= 1

        # Back on the same port, with a new signing key (the mock makes one per start).
        p.start()
        assert p.jwks()["keys"][0]["kid"] != old_kid
        p.set_user("u-ivy", {"groups": ["cb-admins"]})
        # No check in between: the cached JWKS has only the old key; the ID token signed by
        # the new one triggers a JWKS refresh and verifies.
        assert (await full_sign_in(rt.oidc, "u-ivy")).roles == {Role.ADMINISTRATOR}
        await rt.health.check_all()
        assert await gauges() == {"GWS_AUTH_STATUS": 0, "GES_HEALTH": 0}


async def test_no_issuer_no_gws_auth_status(tmp_path: Path) -> None:
    async with started_stack(_embedded(tmp_path)) as stack:
        assert stack.rt.oidc is None
        samples = parse((await stack.internal.get("/metrics")).text)
        assert value(samples, "GWS_AUTH_STATUS") is None
        # No provider (and no GWS health URL): no GWS alarm counter either.
        assert value(samples, "GWS_INCORRECT_CLIENT_CREDENTIALS") is None
        assert value(samples, "GWS_SERVER_ERROR") is None
        assert value(samples, "GES_HEALTH") == 0
        assert "gws_auth" not in (await stack.internal.get("/health/ready")).json()["dependencies"]

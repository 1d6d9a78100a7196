"""The OpenID Connect relying party: operators sign in through any standard provider.

A confidential client (authorization code + PKCE S256) configured by issuer, client id and
secret. The discovery document and the JWKS are fetched and cached; a token signed by a key the
cache does not know triggers one (rate-limited) JWKS refresh, so key rotation works. JOSE is
joserfc's; HTTP is a plain httpx client with bounded timeouts. Nothing secret (codes, tokens,
the client secret) is ever logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import Key, KeySet

from dialback.identity.roles import Principal, Role, parse_role
from dialback.observability.events import Events
from dialback.settings import Settings, parse_role_map

log = logging.getLogger("dialback.oidc")

# Asymmetric algorithms only: "none" and HS* (which would take a published key as an HMAC
# secret) are never accepted, whatever the token or the discovery document says.
ALLOWED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
# At most one JWKS refresh forced by an unknown key per this many seconds (a flood of forged
# tokens must not become a flood of requests to the provider).
JWKS_REFRESH_MIN_SECONDS = 10.0
_MAX_TOKEN_CHARS = 16 * 1024


class OidcError(Exception):
    """An OIDC failure; the message is safe to show an operator."""


class OidcUnavailable(OidcError):
    """The provider is unreachable, answers 5xx or publishes a bad discovery document."""


class OidcRejected(OidcError):
    """A token is invalid, a code was refused, the identity has no role, or the provider
    rejected dialback's client credentials."""


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and what to keep (server-side) for the callback."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class OidcIdentity:
    """An operator the provider vouched for, with the roles and scope its claims map to."""

    subject: str
    name: str
    email: str
    roles: frozenset[Role]
    tenants: frozenset[str] | None

    def principal(self) -> Principal:
        """The acting principal (kind "oidc")."""
        return Principal("oidc", self.name, self.roles, self.tenants, self.subject)


def claim_values(claims: dict[str, Any], path: str) -> list[str]:
    """The strings at a dotted ``path`` of ``claims`` (a string or a list of strings)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return []
        value = value[part]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unverified_header(token: str, what: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise OidcRejected(f"the {what} is not a signed JWT")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise OidcRejected(f"the {what} is not a signed JWT") from None
    if not isinstance(header, dict):
        raise OidcRejected(f"the {what} is not a signed JWT")
    return header


class OidcClient:
    """A relying party of the one configured provider (``settings.oidc_issuer``)."""

    def __init__(self, settings: Settings, events: Events) -> None:
        if not settings.oidc_issuer:
            raise ValueError("OidcClient needs DIALBACK_OIDC_ISSUER")
        self.settings = settings
        self.events = events
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self.audience = settings.oidc_audience or settings.oidc_client_id
        self.role_map = parse_role_map(settings.oidc_role_map)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.oidc_timeout_seconds),
            follow_redirects=False,
            headers={"accept": "application/json"},
        )
        self._lock = asyncio.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._forced_refresh_at = -JWKS_REFRESH_MIN_SECONDS

    @property
    def display_name(self) -> str:
        """The provider's name for the sign-in button."""
        return self.settings.oidc_display_name

    # -- the code flow -------------------------------------------------------------------------

    async def authorization_request(self, redirect_uri: str) -> AuthorizationRequest:
        """A fresh authorization request (state, nonce, PKCE S256 verifier) for ``redirect_uri``."""
        meta = await self._discovery()
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        challenge = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.settings.oidc_scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = meta["authorization_endpoint"]
        url = f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
        return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)

    async def complete(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcIdentity:
        """Redeem ``code`` at the token endpoint and verify the ID token it returns."""
        if not code or len(code) > 4096:
            raise OidcRejected("the provider's callback carried no usable authorization code")
        meta = await self._discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers: dict[str, str] = {}
        secret = self.settings.oidc_client_secret.get_secret_value()
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if "client_secret_basic" not in methods and "client_secret_post" in methods:
            form |= {"client_id": self.client_id, "client_secret": secret}
        else:
            # RFC 6749 §2.3.1: both parts form-encoded before the Basic encoding.
            pair = f"{quote(self.client_id, safe='')}:{quote(secret, safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        resp = await self._request("POST", meta["token_endpoint"], data=form, headers=headers)
        body = self._json_or_none(resp)
        error = body.get("error") if isinstance(body, dict) else None
        if resp.status_code == 401 or error == "invalid_client":
            self.events.gws_credentials_rejected()
            log.warning(
                "the identity provider rejected dialback's client credentials (status %s)",
                resp.status_code,
            )
            raise OidcRejected(
                "the identity provider rejected dialback's client credentials: check "
                "DIALBACK_OIDC_CLIENT_ID and DIALBACK_OIDC_CLIENT_SECRET"
            )
        if resp.status_code == 200 and not isinstance(body, dict):
            raise OidcUnavailable("the identity provider's token endpoint answered no JSON object")
        if resp.status_code != 200 or not isinstance(body, dict):
            reason = f" ({error})" if isinstance(error, str) and len(error) < 64 else ""
            raise OidcRejected(
                f"the identity provider refused the authorization code{reason}: sign in again"
            )
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise OidcRejected("the identity provider returned no ID token (is 'openid' a scope?)")
        return await self.verify_id_token(id_token, nonce=nonce)

    async def verify_id_token(self, id_token: str, *, nonce: str) -> OidcIdentity:
        """The identity an ID token carries: signature, iss, aud/azp, exp, iat, nbf, nonce."""
        claims = await self._verify(id_token, "ID token", audiences=[self.client_id])
        if len(self._audiences(claims)) > 1 and "azp" not in claims:
            raise OidcRejected("the ID token has several audiences and no 'azp' claim")
        if "azp" in claims and claims["azp"] != self.client_id:
            raise OidcRejected("the ID token's 'azp' claim is not dialback's client id")
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not secrets.compare_digest(
            token_nonce.encode(), nonce.encode()
        ):
            raise OidcRejected("the ID token's nonce does not match this sign-in (replayed?)")
        return self._identity(claims)

    async def verify_access_token(self, token: str) -> OidcIdentity:
        """The identity a bearer JWT access token carries, verified against the JWKS."""
        if token.count(".") != 2:
            raise OidcRejected(
                "the bearer token is not a JWT: opaque access tokens cannot be verified "
                "here; have the provider issue JWT access tokens for this audience"
            )
        claims = await self._verify(token, "access token", audiences=[self.audience])
        if claims.get("typ") == "ID" or "nonce" in claims or "at_hash" in claims:
            raise OidcRejected("an ID token is not an access token")
        return self._identity(claims)

    # -- health and lifecycle ------------------------------------------------------------------

    async def check(self) -> None:
        """Fetch the discovery document and the JWKS now; raise OidcUnavailable if either fails."""
        async with self._lock:
            meta = await self._fetch_discovery()
            await self._fetch_keys(meta)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    # -- verification --------------------------------------------------------------------------

    async def _verify(self, token: str, what: str, *, audiences: list[str]) -> dict[str, Any]:
        if len(token) > _MAX_TOKEN_CHARS:
            raise OidcRejected(f"the {what} is too long")
        header = _unverified_header(token, what)
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise OidcRejected(
                f"the {what} is signed with {str(alg)[:20]!r}, which is not allowed "
                f"(allowed: {', '.join(ALLOWED_ALGORITHMS[:10])})"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise OidcRejected(f"the {what} has a malformed 'kid'")
        claims = await self._verified_claims(token, what, alg, kid)
        registry = jwt.JWTClaimsRegistry(
            leeway=self.settings.oidc_clock_skew_seconds,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "values": list(audiences)},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise OidcRejected(f"the {what} has expired") from None
        except MissingClaimError as exc:
            raise OidcRejected(f"the {what} lacks the claim(s) {exc.claim}") from None
        except InvalidClaimError as exc:
            raise OidcRejected(self._claim_message(what, exc.claim, audiences)) from None
        except JoseError as exc:
            raise OidcRejected(f"the {what} is invalid ({exc.error})") from None
        return claims

    def _claim_message(self, what: str, claim: str, audiences: Iterable[str]) -> str:
        if claim == "aud":
            wanted = " or ".join(repr(a) for a in audiences)
            return f"the {what} is not meant for dialback: its audience is not {wanted}"
        if claim == "iss":
            return f"the {what} was issued by another issuer than {self.issuer}"
        if claim == "nbf":
            return f"the {what} is not valid yet (nbf; check the clocks)"
        if claim == "iat":
            return f"the {what} was issued in the future (iat; check the clocks)"
        return f"the {what} has an invalid {claim!r} claim"

    @staticmethod
    def _audiences(claims: dict[str, Any]) -> list[str]:
        aud = claims.get("aud")
        return [aud] if isinstance(aud, str) else list(aud or [])

    async def _verified_claims(
        self, token: str, what: str, alg: str, kid: str | None
    ) -> dict[str, Any]:
        keys = await self._key_set()
        claims = self._decode(token, what, alg, self._candidates(keys, alg, kid))
        if claims is None and (kid is None or all(k.kid != kid for k in keys)):
            # A key the cache does not know: the provider may have rotated its keys. Refresh
            # once (rate limited) and try again.
            fresh = await self._refresh_keys()
            if fresh is not None:
                keys = fresh
                claims = self._decode(token, what, alg, self._candidates(keys, alg, kid))
        if claims is None:
            if not self._candidates(keys, alg, kid):
                raise OidcRejected(
                    f"the {what} is signed by a key the identity provider does not publish"
                )
            raise OidcRejected(f"the {what}'s signature does not verify with the provider's keys")
        return claims

    @staticmethod
    def _decode(token: str, what: str, alg: str, candidates: list[Key]) -> dict[str, Any] | None:
        for key in candidates:
            try:
                claims = jwt.decode(token, key, algorithms=[alg]).claims
            except BadSignatureError:
                continue
            except JoseError as exc:
                raise OidcRejected(f"the {what} is invalid ({exc.error or 'malformed'})") from None
            return claims
        return None

    @staticmethod
    def _candidates(keys: KeySet, alg: str, kid: str | None) -> list[Key]:
        kty = _KEY_TYPES.get(alg[:2])
        found = []
        for key in keys:
            if kid is not None and key.kid != kid:
                continue
            if key.key_type != kty or key.get("use") not in (None, "sig"):
                continue
            if key.alg not in (None, alg):
                continue
            found.append(key)
        return found

    # -- mapping claims to roles and scope ----------------------------------------------------

    def _identity(self, claims: dict[str, Any]) -> OidcIdentity:
        s = self.settings
        subject = str(claims.get("sub", ""))
        name = next(
            (
                claims[c]
                for c in ("preferred_username", "name", "email")
                if isinstance(claims.get(c), str) and claims[c].strip()
            ),
            subject,
        )
        email = claims.get("email") if isinstance(claims.get("email"), str) else ""
        values = claim_values(claims, s.oidc_role_claim)
        roles: set[Role] = set()
        for v in values:
            if self.role_map:
                roles |= self.role_map.get(v, frozenset())
            else:
                try:
                    roles.add(parse_role(v))
                except ValueError:
                    continue
        if not roles:
            raise OidcRejected(
                f"{name} has no dialback role: the {s.oidc_role_claim!r} claim carries "
                f"{'none of the mapped values' if self.role_map else 'no role name'} "
                "(DIALBACK_OIDC_ROLE_CLAIM, DIALBACK_OIDC_ROLE_MAP)"
            )
        tenants = (
            frozenset(claim_values(claims, s.oidc_tenant_claim)) if s.oidc_tenant_claim else None
        )
        return OidcIdentity(
            subject=subject,
            name=str(name)[:200],
            email=str(email)[:320],
            roles=frozenset(roles),
            tenants=tenants,
        )

    # -- discovery and keys --------------------------------------------------------------------

    async def _discovery(self) -> dict[str, Any]:
        if self._metadata is not None and time.monotonic() - self._metadata_at < self._ttl:
            return self._metadata
        async with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < self._ttl:
                return self._metadata
            return await self._fetch_discovery()

    async def _key_set(self) -> KeySet:
        if self._keys is not None and time.monotonic() - self._keys_at < self._ttl:
            return self._keys
        meta = await self._discovery()
        async with self._lock:
            if self._keys is not None and time.monotonic() - self._keys_at < self._ttl:
                return self._keys
            try:
                return await self._fetch_keys(meta)
            except OidcUnavailable:
                if self._keys is None:
                    raise
                # The keys seen last still verify tokens while the provider is away.
                log.warning("JWKS refresh failed; verifying with the keys fetched before")
                return self._keys

    async def _refresh_keys(self) -> KeySet | None:
        now = time.monotonic()
        if now - self._forced_refresh_at < JWKS_REFRESH_MIN_SECONDS:
            # Refreshed a moment ago (or being refreshed now: wait for it): the keys it got.
            async with self._lock:
                return self._keys
        self._forced_refresh_at = now
        meta = await self._discovery()
        async with self._lock:
            return await self._fetch_keys(meta)

    @property
    def _ttl(self) -> float:
        return self.settings.oidc_cache_seconds

    async def _fetch_discovery(self) -> dict[str, Any]:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        meta = await self._get_json(url, "discovery document")
        if meta.get("issuer") != self.issuer:
            raise OidcUnavailable(
                f"the discovery document names the issuer {str(meta.get('issuer'))[:200]!r}, "
                f"not the configured {self.issuer!r} (DIALBACK_OIDC_ISSUER)"
            )
        for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = meta.get(field)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise OidcUnavailable(f"the discovery document has no usable {field}")
        self._metadata, self._metadata_at = meta, time.monotonic()
        return meta

    async def _fetch_keys(self, meta: dict[str, Any]) -> KeySet:
        data = await self._get_json(meta["jwks_uri"], "JWKS")
        try:
            keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, KeyError, TypeError, ValueError) as exc:
            raise OidcUnavailable(
                f"the provider's JWKS is unusable ({type(exc).__name__})"
            ) from None
        self._keys, self._keys_at = keys, time.monotonic()
        return keys

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        resp = await self._request("GET", url)
        if resp.status_code != 200:
            raise OidcUnavailable(f"the identity provider's {what} answered {resp.status_code}")
        body = self._json_or_none(resp)
        if not isinstance(body, dict):
            raise OidcUnavailable(f"the identity provider's {what} is not a JSON object")
        return body

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.events.gws_server_error()
            raise OidcUnavailable(
                f"the identity provider is unreachable ({type(exc).__name__})"
            ) from None
        if resp.status_code >= 500:
            self.events.gws_server_error()
            raise OidcUnavailable(f"the identity provider answered {resp.status_code}")
        return resp

    @staticmethod
    def _json_or_none(resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            return None

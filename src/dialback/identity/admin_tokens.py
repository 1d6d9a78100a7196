"""Admin tokens (``DIALBACK_ADMIN_TOKENS``): machine access to the admin API, each with a role.

An entry is either a bare token (an administrator of every tenant, named by a prefix of its
hash: the form before roles existed) or ``NAME:ROLE[@TENANT+TENANT...]:TOKEN``. TOKEN may be
given as ``sha256:<64 hex digits>`` so that the configuration holds no usable secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from dialback.identity.roles import Principal, Role, parse_role

_NAMED = re.compile(
    r"^(?P<name>[A-Za-z0-9_.-]{1,64}):(?P<role>[A-Za-z ]{1,40})(?:@(?P<tenants>[^:]*))?:(?P<token>.+)$"
)
_HASHED = re.compile(r"^sha256:(?P<hex>[0-9a-fA-F]{64})$")
_MAX_TOKEN_LEN = 512


def token_digest(token: str) -> bytes:
    """The SHA-256 of a token as given by a caller."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def admin_identity(token: str) -> str:
    """The name of a bare token: a prefix of its SHA-256, never the token."""
    return "token:" + token_digest(token).hex()[:12]


@dataclass(frozen=True)
class AdminToken:
    """One configured token: its digest and who it acts as."""

    digest: bytes
    principal: Principal


def parse_entry(entry: str) -> AdminToken:
    """One ``DIALBACK_ADMIN_TOKENS`` entry; ValueError names what is wrong (never the token)."""
    named = _NAMED.match(entry)
    if named is None:
        digest = _digest_of(entry)
        name = "token:" + digest.hex()[:12]
        return AdminToken(digest, Principal("token", name[6:], frozenset({Role.ADMINISTRATOR})))
    name = named["name"]
    try:
        role = parse_role(named["role"])
    except ValueError as exc:
        raise ValueError(f"admin token {name!r}: {exc}") from None
    tenants: frozenset[str] | None = None
    if named["tenants"] is not None:
        tenants = frozenset(t.strip() for t in named["tenants"].split("+") if t.strip())
        if not tenants:
            raise ValueError(f"admin token {name!r}: '@' needs tenant names joined by '+'")
    return AdminToken(
        _digest_of(named["token"]), Principal("token", name, frozenset({role}), tenants)
    )


def _digest_of(token: str) -> bytes:
    hashed = _HASHED.match(token)
    if hashed is not None:
        return bytes.fromhex(hashed["hex"])
    if len(token) < 16:
        raise ValueError("an admin token must be at least 16 characters")
    return token_digest(token)


class AdminTokens:
    """The configured tokens; ``match`` compares digests in constant time against every one."""

    def __init__(self, entries: list[str]) -> None:
        self.tokens = [parse_entry(e) for e in entries]
        names = [t.principal.name for t in self.tokens]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"admin token names used twice: {', '.join(dupes)}")

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def match(self, given: str) -> Principal | None:
        """Who ``given`` acts as, or None."""
        if not given or len(given) > _MAX_TOKEN_LEN:
            return None
        digest = token_digest(given)
        found: Principal | None = None
        for token in self.tokens:  # no early exit: every entry costs the same
            if hmac.compare_digest(digest, token.digest):
                found = token.principal
        return found

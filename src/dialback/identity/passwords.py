"""Local passwords: argon2id hashes (argon2-cffi), the password policy, generated passwords.

The hasher's parameters are argon2-cffi's RFC 9106 "low memory" profile (64 MiB, 3 passes,
4 lanes). A stored hash made with other parameters is re-made at the next successful sign-in.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # a bound on the work one sign-in may ask for

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the user does not exist, so that an unknown name costs one hash
    # too; made on first use (a hash costs ~0.1 s: not at import).
    return _hasher.hash(secrets.token_urlsafe(16))


class PasswordRejected(ValueError):
    """The password breaks the policy; the message says which rule (never the password)."""


def check_policy(username: str, password: str) -> None:
    """Raise PasswordRejected unless ``password`` is at least 12 characters, at most 1024 and
    not the user name (in any case)."""
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"a password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"a password must be at most {MAX_LENGTH} characters")
    if password.strip().lower() == username.strip().lower():
        raise PasswordRejected("a password must not be the user name")


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (with its salt and parameters)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; None (no such user) costs one hash too."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]  # still one hash of the same cost, then a mismatch
        stored_hash = None
    try:
        _hasher.verify(stored_hash or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored_hash is not None


def needs_rehash(stored_hash: str) -> bool:
    """Whether ``stored_hash`` was made with other parameters than the current ones."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


def generate_password() -> str:
    """A strong random password (24 URL-safe characters, about 143 bits)."""
    return secrets.token_urlsafe(18)

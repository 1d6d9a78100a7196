"""Local passwords: argon2id, the policy, one hash for an unknown user, rehash on new params."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from dialback.identity import passwords


def test_hash_is_argon2id_salted_and_verifies() -> None:
    one = passwords.hash_password("a long enough secret")
    two = passwords.hash_password("a long enough secret")
    assert one.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and one != two
    assert passwords.verify_password(one, "a long enough secret")
    assert not passwords.verify_password(one, "a long enough secreT")
    assert not passwords.verify_password("not a hash", "a long enough secret")
    assert not passwords.needs_rehash(one)


def test_an_unknown_user_costs_one_verification_too(monkeypatch: pytest.MonkeyPatch) -> None:
    verified: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            verified.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(passwords, "_hasher", Counting())
    passwords._dummy_hash.cache_clear()
    try:
        assert not passwords.verify_password(None, "whatever it is")
        assert len(verified) == 1 and verified[0].startswith("$argon2id$")
        # An over-long guess costs the same one verification, and fails.
        assert not passwords.verify_password(None, "x" * 2000)
        assert len(verified) == 2
    finally:
        passwords._dummy_hash.cache_clear()


def test_hashes_made_with_other_parameters_need_a_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("a long enough secret")
    assert passwords.verify_password(weak, "a long enough secret")
    assert passwords.needs_rehash(weak)


@pytest.mark.parametrize(
    ("username", "password", "problem"),
    [
        ("alice", "short", "at least 12"),
        ("alice", "x" * 1025, "at most 1024"),
        ("alice.example", "ALICE.EXAMPLE", "not be the user name"),
    ],
)
def test_policy_refusals_name_the_rule(username: str, password: str, problem: str) -> None:
    with pytest.raises(passwords.PasswordRejected, match=problem):
        passwords.check_policy(username, password)


def test_policy_accepts_a_long_passphrase_and_generated_passwords() -> None:
    passwords.check_policy("alice", "correct horse battery staple")
    generated = passwords.generate_password()
    passwords.check_policy("alice", generated)
    assert len(generated) == 24 and generated != passwords.generate_password()

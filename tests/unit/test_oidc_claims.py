"""OIDC claim mapping helpers: dotted claim paths and the role map setting."""

from __future__ import annotations

import pytest

from dialback.identity.oidc import claim_values
from dialback.identity.roles import Role
from dialback.settings import parse_role_map


def test_claim_values_follow_dotted_paths_and_take_strings_only() -> None:
    claims = {
        "groups": ["a", 7, "b", None],
        "role": "monitor",
        "realm_access": {"roles": ["x", "y"]},
        "resource_access": {"dialback": {"roles": "z"}},
        "weird": {"k": 1},
    }
    assert claim_values(claims, "groups") == ["a", "b"]
    assert claim_values(claims, "role") == ["monitor"]
    assert claim_values(claims, "realm_access.roles") == ["x", "y"]
    assert claim_values(claims, "resource_access.dialback.roles") == ["z"]
    assert claim_values(claims, "weird") == []
    assert claim_values(claims, "realm_access.missing") == []
    assert claim_values(claims, "role.deeper") == []


def test_role_map_parses_repeats_and_refuses_junk() -> None:
    assert parse_role_map("") == {}
    assert parse_role_map(" cb-admins = administrator , ops=monitor,ops=developer,") == {
        "cb-admins": {Role.ADMINISTRATOR},
        "ops": {Role.MONITOR, Role.DEVELOPER},
    }
    # A group name may itself hold "=": the role is what follows the last one.
    assert parse_role_map("team=blue=Callback Supervisor") == {"team=blue": {Role.SUPERVISOR}}
    with pytest.raises(ValueError, match="not of the form value=role"):
        parse_role_map("administrator")
    with pytest.raises(ValueError, match="unknown role 'root'"):
        parse_role_map("cb-admins=root")

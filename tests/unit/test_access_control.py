"""The role table, admin tokens with roles, and the role matrix of docs/security.md."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from starlette.requests import Request

from dialback.access_docs import BEGIN, END, render
from dialback.identity.admin_tokens import AdminTokens, parse_entry
from dialback.identity.roles import (
    PERMISSION_TEXT,
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    Role,
    parse_role,
)
from dialback.settings import Settings
from dialback.web.deps import refusal

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_the_docs_role_matrix_is_the_generated_one() -> None:
    text = DOC.read_text()
    block = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert block == render(), "run `make docs` to regenerate the role matrix"


def test_roles_nest_as_ges_defines_them() -> None:
    monitor, supervisor = ROLE_PERMISSIONS[Role.MONITOR], ROLE_PERMISSIONS[Role.SUPERVISOR]
    developer, admin = ROLE_PERMISSIONS[Role.DEVELOPER], ROLE_PERMISSIONS[Role.ADMINISTRATOR]
    assert monitor < supervisor and monitor < developer and supervisor < admin
    assert admin == frozenset(Permission)
    assert Permission.CALLBACKS_WRITE not in developer
    assert Permission.LOGGING_WRITE not in supervisor
    assert not any(p.value.endswith((".write", ".erase")) for p in monitor)


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("monitor", Role.MONITOR),
        ("Callback Administrator", Role.ADMINISTRATOR),
        ("SUPERVISOR", Role.SUPERVISOR),
        ("callback_developer", Role.DEVELOPER),
    ],
)
def test_role_spellings(text: str, role: Role) -> None:
    assert parse_role(text) is role


def test_an_unknown_role_names_the_choices() -> None:
    with pytest.raises(ValueError, match="use one of monitor, supervisor"):
        parse_role("boss")


def test_a_principal_may_what_any_of_its_roles_may() -> None:
    p = Principal("local", "ada", frozenset({Role.MONITOR, Role.DEVELOPER}), frozenset({"acme"}))
    assert p.can(Permission.LOGGING_WRITE) and p.can(Permission.CALLBACKS_READ)
    assert not p.can(Permission.CALLBACKS_WRITE)
    assert p.sees_tenant("acme") and not p.sees_tenant("beta") and not p.unscoped
    assert p.actor == "local:ada"


def test_a_bare_token_is_an_administrator_named_by_its_hash() -> None:
    token = parse_entry("a-bare-token-of-old-times")
    digest = hashlib.sha256(b"a-bare-token-of-old-times").hexdigest()
    assert token.principal.roles == {Role.ADMINISTRATOR}
    assert token.principal.actor == f"token:{digest[:12]}"
    assert token.principal.tenants is None


def test_named_scoped_and_hashed_tokens() -> None:
    hashed = hashlib.sha256(b"grafana-secret-value").hexdigest()
    tokens = AdminTokens(
        [
            "ci:supervisor@acme+beta:ci-secret-value-0001",
            f"grafana:Callback Monitor:sha256:{hashed}",
        ]
    )
    ci = tokens.match("ci-secret-value-0001")
    assert ci is not None and ci.actor == "token:ci" and ci.roles == {Role.SUPERVISOR}
    assert ci.tenants == {"acme", "beta"}
    grafana = tokens.match("grafana-secret-value")
    assert grafana is not None and grafana.roles == {Role.MONITOR} and grafana.unscoped
    # The digest itself is not a credential.
    assert tokens.match(f"sha256:{hashed}") is None
    assert tokens.match("") is None and tokens.match("x" * 10_000) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("ops:boss:a-long-enough-token-1", "unknown role 'boss'"),
        ("short", "at least 16 characters"),
        ("ops:monitor@:a-long-enough-token-1", "tenant names joined by '+'"),
    ],
)
def test_a_bad_entry_stops_the_start_naming_it_never_the_token(entry: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(admin_tokens=SecretStr(entry))
    assert message in str(info.value)
    assert "a-long-enough-token-1" not in str(info.value)


def test_a_name_used_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="names used twice: ops"):
        AdminTokens(["ops:monitor:a-long-enough-token-1", "ops:supervisor:a-long-enough-token-2"])


def test_one_refusal_text_for_the_admin_api_and_the_ui() -> None:
    def on(tenant: str | None) -> Request:
        return Request({"type": "http", "path_params": {"tenant": tenant} if tenant else {}})

    sam = Principal("local", "sam", frozenset({Role.SUPERVISOR}), frozenset({"acme", "beta"}))
    write, read = Permission.TENANTS_WRITE, Permission.CALLBACKS_READ
    assert refusal(on(None), sam, write, every_tenant=False) == (
        f"local:sam (roles: supervisor) may not {PERMISSION_TEXT[write]} (needs tenants.write)"
    )
    assert refusal(on("globex"), sam, read, every_tenant=False) == (
        "tenant 'globex' is outside the scope of local:sam"
    )
    assert refusal(on("acme"), sam, read, every_tenant=True) == (
        "only an operator of every tenant may do this; local:sam is scoped to acme, beta"
    )
    assert refusal(on("acme"), sam, read, every_tenant=False) is None

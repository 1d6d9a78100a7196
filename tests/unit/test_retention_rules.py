"""Retention and erasure rules that need no server: per-tenant days, how an erasure ends a
callback, how the audit names an admin and a number."""

from __future__ import annotations

import hashlib
import hmac
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from dialback.identity.admin_tokens import AdminTokens
from dialback.kit.errors import Conflict
from dialback.observability.events import Events
from dialback.retention.service import RetentionService, retention_days
from dialback.routing.transport import MemoryTransport
from dialback.settings import Settings
from dialback.tenants.repository import Tenant


def tenant(settings: dict[str, Any]) -> Tenant:
    return Tenant("t1", "acme", settings, False)


def test_a_tenants_own_days_win_and_unset_ones_follow_the_settings() -> None:
    s = Settings(retention_callback_days=30, retention_callin_days=10)
    assert retention_days(tenant({}), s) == (30, 10)
    assert retention_days(tenant({"retention": {"callbackDays": 400}}), s) == (400, 10)
    assert retention_days(tenant({"retention": {"callInDays": 2}}), s) == (30, 2)


def service(**settings: Any) -> RetentionService:
    return RetentionService(
        None,  # type: ignore[arg-type]
        MemoryTransport(),
        Events(),
        Settings(**settings),
        consumer="me",
    )


def row(state: str, **kw: Any) -> SimpleNamespace:
    base = {
        "id": "cb",
        "state": state,
        "attempt": 1,
        "slot_start": 100.0,
        "lease_expires_at": None,
        "phone_number": "+14155550123",
    }
    return SimpleNamespace(**{**base, **kw})


def test_an_erasure_cancels_open_callbacks_as_the_state_machine_does() -> None:
    svc = service()
    assert svc._decide(row("COMPLETED"), 1000.0) is None
    t = svc._decide(row("SCHEDULED"), 1000.0)
    assert t is not None and t.release_slot == 100.0 and not t.notify_routing
    t = svc._decide(row("QUEUED"), 1000.0)
    assert t is not None and t.release_slot is None and t.notify_routing
    with pytest.raises(Conflict, match="PROCESSING"):
        svc._decide(row("PROCESSING"), 1000.0)
    with pytest.raises(Conflict, match="being dispatched"):
        svc._decide(row("SCHEDULED", lease_expires_at=1030.0), 1000.0)
    assert svc._decide(row("SCHEDULED", lease_expires_at=900.0), 1000.0) is not None


def test_the_number_is_hashed_with_the_key_or_not_at_all() -> None:
    assert service().phone_hash("+14155550123") is None
    keyed = service(erasure_hash_key=SecretStr("k"))
    expected = hmac.new(b"k", b"+14155550123", hashlib.sha256).hexdigest()
    assert keyed.phone_hash("+14155550123") == expected


def test_an_admin_is_named_by_a_prefix_of_its_tokens_hash() -> None:
    tokens = AdminTokens(["first-secret-token", "second-secret-token"])
    who = tokens.match("first-secret-token")
    assert who is not None
    assert who.actor == "token:" + hashlib.sha256(b"first-secret-token").hexdigest()[:12]
    assert "first-secret-token" not in who.actor
    second = tokens.match("second-secret-token")
    assert second is not None and second.actor != who.actor

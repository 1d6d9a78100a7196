"""The one-time tokens of the UI's show-once forms (a new API key, a generated password)."""

from __future__ import annotations

import pytest

from dialback.ui import forms
from dialback.ui.forms import ShownOnce


def test_a_token_is_used_once_released_on_failure_and_forgotten_when_old(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(forms.time, "monotonic", lambda: now[0])
    once = ShownOnce(ttl=60, size=3)
    a, b = once.new(), once.new()
    assert a != b and len(a) >= 16
    assert once.use(a) and not once.use(a)
    once.release(a)
    assert once.use(a) and not once.use(a)
    now[0] += 61  # older than ttl: forgotten (the session it belonged to has long ended)
    assert once.use(b) and once.use(a)
    for t in ("c" * 20, "d" * 20, "e" * 20):
        assert once.use(t)
    assert len(once._used) <= 3  # bounded

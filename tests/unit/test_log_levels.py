"""Log level names are read case-insensitively everywhere (GES's Helm sample says DEBUG)."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from dialback.observability.logging import current_level, set_level
from dialback.settings import Settings

SPELLINGS = [
    ("DEBUG", "debug"),
    ("Info", "info"),
    ("WARN", "warn"),
    ("WARNING", "warn"),
    ("warning", "warn"),
    ("ERROR", "error"),
    ("TRACE", "trace"),
    ("FATAL", "error"),
    ("CRITICAL", "error"),
    (" info ", "info"),
]


@pytest.mark.parametrize(("given", "canonical"), SPELLINGS)
def test_the_environment_accepts_any_case(
    monkeypatch: pytest.MonkeyPatch, given: str, canonical: str
) -> None:
    monkeypatch.setenv("DIALBACK_LOG_LEVEL", given)
    assert Settings().log_level == canonical


def test_an_unknown_level_is_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALBACK_LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError, match="log_level"):
        Settings()


@pytest.mark.parametrize(("given", "canonical"), SPELLINGS)
def test_set_level_accepts_any_case(given: str, canonical: str) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        set_level(given)
        assert current_level() == canonical
    finally:
        root.setLevel(before)
    with pytest.raises(ValueError, match="any case"):
        set_level("loud")

"""docs/configuration.md lists exactly the settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from dialback.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented_and_nothing_else() -> None:
    documented = set(re.findall(r"`(DIALBACK_[A-Z0-9_]+)`", DOC.read_text()))
    in_code = {f"DIALBACK_{name.upper()}" for name in Settings.model_fields}
    assert in_code - documented == set(), "settings missing from docs/configuration.md"
    assert documented - in_code == set(), "docs/configuration.md names settings the code lacks"


def test_documented_defaults_match_the_code() -> None:
    rows = re.findall(r"^\| `(DIALBACK_[A-Z0-9_]+)` \| ([^|]+) \|", DOC.read_text(), re.M)
    defaults = Settings.model_fields
    for var, shown in rows:
        field = defaults[var.removeprefix("DIALBACK_").lower()]
        value = field.default
        shown = shown.strip()
        if shown in ("unset", "empty"):
            secret = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            assert value is None or str(secret) == "", var
        else:
            text = shown.strip("`")
            expected = str(value).lower() if isinstance(value, bool) else str(value)
            assert text == expected, f"{var}: docs say {text}, code says {expected}"

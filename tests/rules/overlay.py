"""A test overlay of the shipped rules file: every `for:` shortened, nothing else changed.

The live end-to-end test loads this into a real Prometheus so that an alert fires within
seconds of a dependency being cut, while expressions, labels and annotations stay exactly
those that ship in the chart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

RULES_FILE = Path(__file__).resolve().parents[2] / "charts/dialback/rules/dialback-rules.yaml"

# A `for:` key alone on its line, with a Prometheus duration (e.g. 15m, 90s, 1h30m).
_FOR_LINE = re.compile(r"^(?P<indent>[ \t]*)for:[ \t]*(?P<value>[0-9a-z]+)[ \t]*$", re.MULTILINE)
_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")


def shortened_rules(duration: str = "5s", rules_file: Path = RULES_FILE) -> str:
    """The rules file's text with every rule's `for:` set to ``duration``; all else verbatim."""
    if not _DURATION.fullmatch(duration):
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    original = rules_file.read_text()
    text = _FOR_LINE.sub(lambda m: f"{m['indent']}for: {duration}", original)
    # Guard the text edit: parsed, the overlay must differ from the original in `for` only.
    before, after = yaml.safe_load(original), yaml.safe_load(text)
    if _without_for(before) != _without_for(after) or _for_count(before) != _for_count(after):
        raise AssertionError(f"{rules_file}: shortening `for:` changed more than `for:`")
    return text


def write_shortened_rules(dest: Path, duration: str = "5s", rules_file: Path = RULES_FILE) -> Path:
    """Write the overlay to ``dest`` (a file path) and return it."""
    dest.write_text(shortened_rules(duration, rules_file))
    return dest


def _rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _without_for(doc: dict[str, Any]) -> dict[str, Any]:
    groups = [
        {**g, "rules": [{k: v for k, v in r.items() if k != "for"} for r in g["rules"]]}
        for g in doc["groups"]
    ]
    return {**doc, "groups": groups}


def _for_count(doc: dict[str, Any]) -> int:
    return sum(1 for rule in _rules(doc) if "for" in rule)

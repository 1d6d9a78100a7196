"""docs/observability.md lists every alert of the shipped rules file."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_alert_table_matches_the_rules_file() -> None:
    rules = yaml.safe_load((ROOT / "charts/dialback/rules/dialback-rules.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    listed = set(
        re.findall(
            r"\| \[`([A-Z0-9_-]+)`\]\(alerts\.md#", (ROOT / "docs/observability.md").read_text()
        )
    )
    assert listed == alerts

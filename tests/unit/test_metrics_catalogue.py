"""Metrics has one typed attribute per catalogue family, and only Events writes them."""

from __future__ import annotations

import re
from pathlib import Path

from dialback.observability.catalogue import CATALOGUE
from dialback.observability.metrics import Metrics
from dialback.observability.registry import Family

SRC = Path(__file__).resolve().parents[2] / "src" / "dialback"
# The writers: metrics.py itself (defaults, the process collector), Events, and the batched
# request observer (the rule is written in events.py's docstring).
WRITERS = {"metrics.py", "events.py", "http_metrics.py"}


def test_every_catalogue_family_has_its_attribute_and_vice_versa() -> None:
    annotated = {name for name, kind in Metrics.__annotations__.items() if kind == "Family"}
    assert annotated == {d.name for d in CATALOGUE}
    m = Metrics()
    for d in CATALOGUE:
        family = getattr(m, d.name)
        assert isinstance(family, Family) and family is m.registry.get(d.name)
        assert (family.name, family.labels) == (d.name, d.labels)


def test_no_module_but_the_writers_touches_a_family() -> None:
    names = "|".join(re.escape(d.name) for d in CATALOGUE)
    family = re.compile(rf"\.({names})\b")
    by_name = re.compile(r"\.f\[|\bregistry\.get\(|\.alarm\(")
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "observability" and path.name in WRITERS:
            continue
        text = path.read_text()
        offenders += [f"{path.relative_to(SRC)}: {m.group(0)}" for m in family.finditer(text)]
        offenders += [f"{path.relative_to(SRC)}: {m.group(0)}" for m in by_name.finditer(text)]
    assert offenders == []

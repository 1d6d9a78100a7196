"""A small, fast Prometheus text-format registry.

dialback renders its own exposition instead of using prometheus_client's: GES's names need
exact control of type and suffix (counters without ``_total``), and rendering must stay in
single-digit milliseconds with hundreds of tenant/service series while the API is under load.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]
Exposition = Literal["counter", "gauge", "histogram", "untyped"]


def escape_label(value: str) -> str:
    """Escape a label value for the text format."""
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def format_value(v: float) -> str:
    """Render a sample value; whole numbers without a fraction."""
    if isinstance(v, int):
        return str(v)
    if v == math.inf:
        return "+Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


@dataclass
class Family:
    """One metric family: a name, its labels and its series."""

    name: str
    kind: Kind
    exposition: Exposition
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    series: dict[tuple[str, ...], float] = field(default_factory=dict)
    hist: dict[tuple[str, ...], list[float]] = field(default_factory=dict)

    def inc(self, values: tuple[str, ...] = (), amount: float = 1) -> None:
        """Add ``amount`` to the series with these label values."""
        self.series[values] = self.series.get(values, 0) + amount

    def set(self, values: tuple[str, ...], value: float) -> None:
        """Set a gauge series."""
        self.series[values] = value

    def ensure(self, values: tuple[str, ...] = ()) -> None:
        """Create the series at 0 if it does not exist (so increase() sees its first step)."""
        if self.kind == "histogram":
            if values not in self.hist:
                self.hist[values] = [0] * (len(self.buckets) + 2)
        elif values not in self.series:
            self.series[values] = 0

    def remove(self, values: tuple[str, ...]) -> None:
        """Drop one series."""
        self.series.pop(values, None)
        self.hist.pop(values, None)

    def observe(self, values: tuple[str, ...], v: float) -> None:
        """Record one observation in a histogram series."""
        h = self.hist.get(values)
        if h is None:
            h = self.hist[values] = [0] * (len(self.buckets) + 2)
        # Layout: per-bucket counts (non-cumulative), +Inf bucket, then the sum.
        h[bisect_left(self.buckets, v)] += 1
        h[-1] += v

    def value(self, values: tuple[str, ...] = ()) -> float:
        """Current value of a counter/gauge series (0 when absent)."""
        return self.series.get(values, 0)

    def render(self, out: list[str]) -> None:
        """Append this family's exposition lines to ``out`` (nothing when it has no series)."""
        if not self.series and not self.hist:
            return
        out.append(f"# HELP {self.name} {self.help}")
        out.append(f"# TYPE {self.name} {self.exposition}")
        name = self.name
        labels = self.labels
        if self.kind != "histogram":
            for values, v in list(self.series.items()):
                if labels:
                    inner = ",".join(
                        f'{k}="{escape_label(x)}"' for k, x in zip(labels, values, strict=True)
                    )
                    out.append(f"{name}{{{inner}}} {format_value(v)}")
                else:
                    out.append(f"{name} {format_value(v)}")
            return
        bounds = [format_value(b) for b in self.buckets] + ["+Inf"]
        for values, h in list(self.hist.items()):
            prefix = ",".join(
                f'{k}="{escape_label(x)}"' for k, x in zip(labels, values, strict=True)
            )
            sep = "," if prefix else ""
            cum: float = 0
            for le, n in zip(bounds, h[:-1], strict=True):
                cum += n
                out.append(f'{name}_bucket{{{prefix}{sep}le="{le}"}} {format_value(cum)}')
            lbl = f"{{{prefix}}}" if prefix else ""
            out.append(f"{name}_sum{lbl} {format_value(h[-1])}")
            out.append(f"{name}_count{lbl} {format_value(cum)}")

    def count(self, values: tuple[str, ...] = ()) -> float:
        """Observations recorded in a histogram series."""
        h = self.hist.get(values)
        return sum(h[:-1]) if h else 0


class Registry:
    """Families in exposition order, plus collectors run just before each render."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        self.collectors: list[Callable[[], None]] = []

    def add(self, family: Family) -> Family:
        """Register a family; names are unique."""
        if family.name in self.families:
            raise ValueError(f"metric {family.name} registered twice")
        self.families[family.name] = family
        return family

    def get(self, name: str) -> Family:
        """A registered family by name."""
        return self.families[name]

    def render(self, skip: Iterable[str] = ()) -> str:
        """The whole exposition in the Prometheus text format 0.0.4."""
        for collect in self.collectors:
            collect()
        skipped = set(skip)
        out: list[str] = []
        for fam in self.families.values():
            if fam.name not in skipped:
                fam.render(out)
        out.append("")
        return "\n".join(out)

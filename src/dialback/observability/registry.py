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
    # Rendered sample names per series ("name{labels} "; a histogram's bucket, sum and count
    # names): built once, so a render at thousands of series only formats the values.
    _names: dict[tuple[str, ...], str] = field(default_factory=dict, repr=False, compare=False)
    _hist_names: dict[tuple[str, ...], tuple[list[str], str, str]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # The text of each series (a histogram's lines joined) and of the whole family as last
    # rendered, and the series changed since: a render formats only those. ``_changed`` is a
    # dict, not a set, so new series enter ``_lines`` in the order they entered the family.
    _lines: dict[tuple[str, ...], str] = field(default_factory=dict, repr=False, compare=False)
    _changed: dict[tuple[str, ...], None] = field(default_factory=dict, repr=False, compare=False)
    _text: str | None = field(default=None, repr=False, compare=False)

    def inc(self, values: tuple[str, ...] = (), amount: float = 1) -> None:
        """Add ``amount`` to the series with these label values."""
        self.series[values] = self.series.get(values, 0) + amount
        self._changed[values] = None

    def set(self, values: tuple[str, ...], value: float) -> None:
        """Set a gauge series."""
        if self.series.get(values) != value:
            self.series[values] = value
            self._changed[values] = None

    def ensure(self, values: tuple[str, ...] = ()) -> None:
        """Create the series at 0 if it does not exist (so increase() sees its first step)."""
        if self.kind == "histogram":
            if values not in self.hist:
                self.hist[values] = [0] * (len(self.buckets) + 2)
                self._changed[values] = None
        elif values not in self.series:
            self.series[values] = 0
            self._changed[values] = None

    def remove(self, values: tuple[str, ...]) -> None:
        """Drop one series."""
        self.series.pop(values, None)
        self.hist.pop(values, None)
        self._names.pop(values, None)
        self._hist_names.pop(values, None)
        self._changed.pop(values, None)
        if self._lines.pop(values, None) is not None:
            self._text = None

    def observe(self, values: tuple[str, ...], v: float) -> None:
        """Record one observation in a histogram series."""
        h = self.hist.get(values)
        if h is None:
            h = self.hist[values] = [0] * (len(self.buckets) + 2)
        # Layout: per-bucket counts (non-cumulative), +Inf bucket, then the sum.
        h[bisect_left(self.buckets, v)] += 1
        h[-1] += v
        self._changed[values] = None

    def value(self, values: tuple[str, ...] = ()) -> float:
        """Current value of a counter/gauge series (0 when absent)."""
        return self.series.get(values, 0)

    def _labels(self, values: tuple[str, ...]) -> str:
        return ",".join(
            f'{k}="{escape_label(x)}"' for k, x in zip(self.labels, values, strict=True)
        )

    def _sample_name(self, values: tuple[str, ...]) -> str:
        text = f"{self.name}{{{self._labels(values)}}} " if self.labels else f"{self.name} "
        self._names[values] = text
        return text

    def _hist_sample_names(self, values: tuple[str, ...]) -> tuple[list[str], str, str]:
        prefix = self._labels(values)
        sep = "," if prefix else ""
        lbl = f"{{{prefix}}}" if prefix else ""
        bounds = [format_value(b) for b in self.buckets] + ["+Inf"]
        names = (
            [f'{self.name}_bucket{{{prefix}{sep}le="{le}"}} ' for le in bounds],
            f"{self.name}_sum{lbl} ",
            f"{self.name}_count{lbl} ",
        )
        self._hist_names[values] = names
        return names

    def _hist_text(self, values: tuple[str, ...], h: list[float]) -> str:
        buckets, sum_name, count_name = self._hist_names.get(values) or self._hist_sample_names(
            values
        )
        lines = []
        cum: float = 0
        for bucket, n in zip(buckets, h[:-1], strict=True):
            cum += n
            lines.append(bucket + format_value(cum))
        lines.append(sum_name + format_value(h[-1]))
        lines.append(count_name + format_value(cum))
        return "\n".join(lines)

    def render(self, out: list[str]) -> None:
        """Append this family's exposition to ``out`` (nothing when it has no series)."""
        if not self.series and not self.hist:
            return
        changed, self._changed = self._changed, {}
        lines = self._lines
        histogram = self.kind == "histogram"
        if len(lines) + len(changed) < len(self.hist if histogram else self.series):
            # A series that did not pass through inc/set/observe/ensure: render them all.
            changed = dict.fromkeys(self.hist if histogram else self.series)
            lines.clear()
        if changed or self._text is None:
            if histogram:
                for values in changed:
                    h = self.hist.get(values)
                    if h is not None:
                        lines[values] = self._hist_text(values, h)
            else:
                names = self._names
                for values in changed:
                    if values in self.series:
                        v = self.series[values]
                        text = names.get(values) or self._sample_name(values)
                        lines[values] = text + format_value(v)
            head = f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.exposition}\n"
            self._text = head + "\n".join(lines.values())
        out.append(self._text)

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

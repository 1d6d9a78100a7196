"""The memoised utc_iso writes exactly what datetime + strftime wrote, for any instant."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from dialback.kit import timefmt
from dialback.kit.timefmt import utc_iso


def reference(t: float) -> str:
    ms = round(t * 1000)
    return (
        datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    )


def test_utc_iso_matches_the_datetime_formatting_everywhere() -> None:
    rng = random.Random(20261124)
    instants = [rng.uniform(-2e9, 2.5e11) for _ in range(20_000)]
    # Dense runs in one second and one day (the memoised paths), and the edges of units.
    instants += [1_790_000_000 + i / 997 for i in range(3_000)]
    instants += [86_400 * d + s for d in (0, 10_957, 11_016, 20_000) for s in (-0.0005, 0, 59.9995)]
    instants += [0, 1.9999999, -0.0004, -1.5, 951_782_400.0, 4_107_542_400.0, 253_402_300_799.999]
    for t in instants:
        assert utc_iso(t) == reference(t), t


def test_utc_iso_memo_stays_bounded() -> None:
    for s in range(10_000):
        utc_iso(1_000_000_000 + s * 86_400.0)
    assert len(timefmt._ISO_DAYS) <= 1024

"""Business hours and capacity slots, computed in the service's time zone (DST-correct).

Open windows are built from local wall-clock ranges and converted to UTC instants. A start or
end that falls in a DST gap (a wall time that never happens) maps to the transition instant; one
that happens twice opens at its first and closes at its last occurrence. Slots follow the local
clock: each local day is cut into slot-length pieces from its first instant, stepped in UTC, so a
23- or 25-hour DST day has the right count and every caller derives the same slot starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dialback.services.schemas import WEEKDAYS, BusinessHours, CapacityRule, hhmm_to_minutes

_DAY = timedelta(days=1)
_INF = float("inf")


@dataclass(frozen=True)
class Window:
    """An open interval [start, end) in UTC epoch seconds."""

    start: float
    end: float


@dataclass(frozen=True)
class Slot:
    """One capacity slot: start/end in UTC epoch seconds and its configured maximum."""

    start: float
    end: float
    total: int | None


def _offset(t: float, tz: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(t, tz).utcoffset()


def _local_to_utc(day: date, minutes: int, tz: ZoneInfo, *, last: bool = False) -> float:
    """The instant the local clock of ``day`` reads ``minutes`` past midnight (1440 = next day).

    A repeated wall time gives its first occurrence (its last when ``last``); a skipped one gives
    the transition instant, the first moment the clock reads later than it.
    """
    if minutes >= 24 * 60:
        day, minutes = day + _DAY, minutes - 24 * 60
    naive = datetime.combine(day, time(minutes // 60, minutes % 60))
    t0 = naive.replace(tzinfo=tz, fold=0).timestamp()
    t1 = naive.replace(tzinfo=tz, fold=1).timestamp()
    if t0 <= t1:
        return t1 if last else t0
    # In a gap: fold=1 lands before the transition, fold=0 after it; bisect to the second.
    lo, hi = int(t1), int(t0)
    after = _offset(hi, tz)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(mid, tz) == after:
            hi = mid
        else:
            lo = mid
    return float(hi)


def open_windows(hours: BusinessHours, start: float, end: float) -> list[Window]:
    """Open windows overlapping [start, end), merged across midnight (not clipped)."""
    if hours.always_open:
        return [Window(start, end)]
    tz = ZoneInfo(hours.timezone)
    closed = set(hours.closed_dates)
    day = datetime.fromtimestamp(start, tz).date() - _DAY
    last = datetime.fromtimestamp(end, tz).date() + _DAY
    raw: list[Window] = []
    while day <= last:
        if day not in closed:
            for rng in hours.weekly.get(WEEKDAYS[day.weekday()], []):
                s = _local_to_utc(day, hhmm_to_minutes(rng.start), tz)
                e = _local_to_utc(day, hhmm_to_minutes(rng.end), tz, last=True)
                if e > s:
                    raw.append(Window(s, e))
        day += _DAY
    raw.sort(key=lambda w: w.start)
    merged: list[Window] = []
    for w in raw:
        if merged and w.start <= merged[-1].end:
            if w.end > merged[-1].end:
                merged[-1] = Window(merged[-1].start, w.end)
        else:
            merged.append(w)
    return [w for w in merged if w.end > start and w.start < end]


def window_at(hours: BusinessHours, t: float) -> Window | None:
    """The open window containing instant ``t``, or None when closed."""
    for w in open_windows(hours, t - 1, t + 1):
        if w.start <= t < w.end:
            return w
    return None


def is_open(hours: BusinessHours, t: float) -> bool:
    """Whether the service is open at instant ``t``."""
    return window_at(hours, t) is not None


def open_for(hours: BusinessHours, t: float, horizon_days: int = 8) -> float:
    """Seconds from ``t`` until the service closes; 0 when closed now."""
    if hours.always_open:
        return float(horizon_days * 86400)
    windows = open_windows(hours, t, t + horizon_days * 86400)
    for w in windows:
        if w.start <= t < w.end:
            return w.end - t
    return 0.0


def next_opening(hours: BusinessHours, t: float, horizon_days: int = 14) -> float | None:
    """The first instant at or after ``t`` at which the service is open."""
    for w in open_windows(hours, t, t + horizon_days * 86400):
        if w.end > t:
            return max(w.start, t)
    return None


def slot_capacity(rule: CapacityRule, slot_start: float, tz: ZoneInfo) -> int | None:
    """The configured maximum for the slot starting at ``slot_start``; None = unlimited."""
    local = datetime.fromtimestamp(slot_start, tz)
    minute = local.hour * 60 + local.minute
    for win in rule.weekly.get(WEEKDAYS[local.weekday()], []):
        if hhmm_to_minutes(win.start) <= minute < hhmm_to_minutes(win.end):
            return win.capacity
    return rule.default_capacity


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[float, float]:
    return _local_to_utc(day, 0, tz), _local_to_utc(day + _DAY, 0, tz)


def iter_slots(
    hours: BusinessHours, rule: CapacityRule, start: float, end: float
) -> Iterator[Slot]:
    """Every slot of the open windows that overlaps [start, end), in time order."""
    step = rule.slot_minutes * 60
    tz = ZoneInfo(hours.timezone)
    windows = [Window(-_INF, _INF)] if hours.always_open else open_windows(hours, start, end)
    for w in windows:
        lo, hi = max(w.start, start), min(w.end, end)
        if hi <= lo:
            continue
        day = datetime.fromtimestamp(lo, tz).date()
        while True:
            d0, d1 = _day_bounds(day, tz)
            if d0 >= hi:
                break
            b = d0 + max(0, (lo - d0) // step) * step
            while b < d1 and b < hi:
                s, e = max(b, w.start), min(b + step, d1, w.end)
                if e > lo:
                    yield Slot(s, e, slot_capacity(rule, s, tz))
                b += step
            day += _DAY


def slot_for(hours: BusinessHours, rule: CapacityRule, t: float) -> Slot | None:
    """The slot that instant ``t`` falls in, or None when the service is closed then."""
    w = Window(-_INF, _INF) if hours.always_open else window_at(hours, t)
    if w is None:
        return None
    step = rule.slot_minutes * 60
    tz = ZoneInfo(hours.timezone)
    d0, d1 = _day_bounds(datetime.fromtimestamp(t, tz).date(), tz)
    b = d0 + ((t - d0) // step) * step
    s = max(b, w.start)
    return Slot(s, min(b + step, d1, w.end), slot_capacity(rule, s, tz))

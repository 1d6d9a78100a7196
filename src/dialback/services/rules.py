"""Business hours and capacity slots, computed in the service's time zone (DST-correct).

Open windows are built from local wall-clock ranges and converted to UTC instants; slots are
stepped in UTC from each window's start, so a 25-hour or 23-hour DST day has the right count.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dialback.services.schemas import WEEKDAYS, BusinessHours, CapacityRule, hhmm_to_minutes


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


def _local_to_utc(day: datetime, minutes: int, tz: ZoneInfo, fold: int) -> float:
    base = datetime.combine(day.date(), time(0), tzinfo=tz)
    if minutes >= 24 * 60:
        nxt = (base + timedelta(days=1)).replace(tzinfo=tz, fold=0)
        return datetime.combine(nxt.date(), time(0), tzinfo=tz).timestamp()
    local = datetime.combine(day.date(), time(minutes // 60, minutes % 60), tzinfo=tz)
    return local.replace(fold=fold).timestamp()


def open_windows(hours: BusinessHours, start: float, end: float) -> list[Window]:
    """Open windows overlapping [start, end), merged across midnight, clipped to nothing."""
    if hours.always_open:
        return [Window(start, end)]
    tz = ZoneInfo(hours.timezone)
    closed = set(hours.closed_dates)
    first = datetime.fromtimestamp(start, tz) - timedelta(days=1)
    last = datetime.fromtimestamp(end, tz) + timedelta(days=1)
    raw: list[Window] = []
    day = first
    while day.date() <= last.date():
        if day.date() not in closed:
            for rng in hours.weekly.get(WEEKDAYS[day.weekday()], []):
                s = _local_to_utc(day, hhmm_to_minutes(rng.start), tz, fold=0)
                e = _local_to_utc(day, hhmm_to_minutes(rng.end), tz, fold=1)
                if e > s:
                    raw.append(Window(s, e))
        day = day + timedelta(days=1)
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


def iter_slots(
    hours: BusinessHours, rule: CapacityRule, start: float, end: float
) -> Iterator[Slot]:
    """Every slot of the open windows that starts within [start, end)."""
    step = rule.slot_minutes * 60
    tz = ZoneInfo(hours.timezone)
    for w in open_windows(hours, start, end):
        s = w.start
        if hours.always_open:
            s = (start // step) * step
        while s < w.end and s < end:
            if s >= start or s + step > start:
                yield Slot(s, min(s + step, w.end), slot_capacity(rule, s, tz))
            s += step


def slot_for(hours: BusinessHours, rule: CapacityRule, t: float) -> Slot | None:
    """The slot that instant ``t`` falls in, or None when the service is closed then."""
    w = window_at(hours, t)
    if w is None:
        return None
    step = rule.slot_minutes * 60
    origin = (t // step) * step if hours.always_open else w.start
    s = origin + ((t - origin) // step) * step
    tz = ZoneInfo(hours.timezone)
    return Slot(s, min(s + step, w.end), slot_capacity(rule, s, tz))


def utc_iso(t: float) -> str:
    """Epoch seconds to ISO-8601 UTC with milliseconds, as GES writes times."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1000) % 1000:03d}Z"


def local_iso(t: float, tz_name: str) -> str:
    """Epoch seconds to ISO-8601 in the given zone with its offset."""
    return datetime.fromtimestamp(t, ZoneInfo(tz_name)).isoformat(timespec="seconds")

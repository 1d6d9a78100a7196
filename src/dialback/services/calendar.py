"""Business hours and capacity slots, computed in the service's time zone (DST-correct).

A service's configuration is compiled once, when its record is loaded, into a
``ServiceCalendar``: the zone, the weekly ranges and capacity windows as integer minutes, the
closed dates as a set and the slot length. Nothing on the request path re-reads the config.

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

from dialback.services.schemas import (
    WEEKDAYS,
    BusinessHours,
    CapacityRule,
    ServiceConfig,
    hhmm_to_minutes,
)

_DAY = timedelta(days=1)
_INF = float("inf")
_DAY_CACHE_MAX = 512


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


_ALWAYS = Window(-_INF, _INF)


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


Ranges = tuple[tuple[int, int], ...]
CapacityWindows = tuple[tuple[int, int, int], ...]


class ServiceCalendar:
    """A service's business hours and capacity slots, compiled once from its configuration."""

    __slots__ = (
        "_day_windows",
        "always_open",
        "capacity_weekly",
        "closed",
        "default_capacity",
        "slot_minutes",
        "timezone",
        "weekly",
        "zone",
    )

    def __init__(
        self,
        *,
        timezone: str,
        always_open: bool,
        weekly: tuple[Ranges, ...],
        closed: frozenset[date],
        slot_minutes: int,
        default_capacity: int | None,
        capacity_weekly: tuple[CapacityWindows, ...],
    ) -> None:
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.always_open = always_open
        self.weekly = weekly  # per weekday (Monday = 0): (start, end) in local minutes
        self.closed = closed
        self.slot_minutes = slot_minutes
        self.default_capacity = default_capacity
        self.capacity_weekly = capacity_weekly  # per weekday: (start, end, capacity)
        self._day_windows: dict[date, tuple[Window, ...]] = {}

    @classmethod
    def compile(cls, cfg: ServiceConfig) -> ServiceCalendar:
        """The calendar of a service configuration."""
        return cls.of(cfg.business_hours, cfg.capacity)

    @classmethod
    def of(cls, hours: BusinessHours, capacity: CapacityRule | None = None) -> ServiceCalendar:
        """The calendar of business hours and a capacity rule (the default rule when None)."""
        rule = capacity if capacity is not None else CapacityRule()
        return cls(
            timezone=hours.timezone,
            always_open=hours.always_open,
            weekly=tuple(
                tuple(
                    (hhmm_to_minutes(r.start), hhmm_to_minutes(r.end))
                    for r in hours.weekly.get(day, [])
                )
                for day in WEEKDAYS
            ),
            closed=frozenset(hours.closed_dates),
            slot_minutes=rule.slot_minutes,
            default_capacity=rule.default_capacity,
            capacity_weekly=tuple(
                tuple(
                    (hhmm_to_minutes(w.start), hhmm_to_minutes(w.end), w.capacity)
                    for w in rule.weekly.get(day, [])
                )
                for day in WEEKDAYS
            ),
        )

    def _windows_of_day(self, day: date) -> tuple[Window, ...]:
        """The open windows of one local day's ranges, unmerged (memoised per day)."""
        got = self._day_windows.get(day)
        if got is not None:
            return got
        out: list[Window] = []
        if day not in self.closed:
            tz = self.zone
            for start, end in self.weekly[day.weekday()]:
                s = _local_to_utc(day, start, tz)
                e = _local_to_utc(day, end, tz, last=True)
                if e > s:
                    out.append(Window(s, e))
        if len(self._day_windows) >= _DAY_CACHE_MAX:
            self._day_windows.clear()
        got = self._day_windows[day] = tuple(out)
        return got

    def open_windows(self, start: float, end: float) -> list[Window]:
        """Open windows overlapping [start, end), merged across midnight (not clipped)."""
        if self.always_open:
            return [Window(start, end)]
        tz = self.zone
        day = datetime.fromtimestamp(start, tz).date() - _DAY
        last = datetime.fromtimestamp(end, tz).date() + _DAY
        raw: list[Window] = []
        while day <= last:
            raw.extend(self._windows_of_day(day))
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

    def window_at(self, t: float) -> Window | None:
        """The open window containing instant ``t``, or None when closed."""
        for w in self.open_windows(t - 1, t + 1):
            if w.start <= t < w.end:
                return w
        return None

    def is_open(self, t: float) -> bool:
        """Whether the service is open at instant ``t``."""
        return self.window_at(t) is not None

    def open_for(self, t: float, horizon_days: int = 8) -> float:
        """Seconds from ``t`` until the service closes; 0 when closed now."""
        if self.always_open:
            return float(horizon_days * 86400)
        for w in self.open_windows(t, t + horizon_days * 86400):
            if w.start <= t < w.end:
                return w.end - t
        return 0.0

    def next_opening(self, t: float, horizon_days: int = 14) -> float | None:
        """The first instant at or after ``t`` at which the service is open."""
        for w in self.open_windows(t, t + horizon_days * 86400):
            if w.end > t:
                return max(w.start, t)
        return None

    def slot_capacity(self, slot_start: float) -> int | None:
        """The configured maximum for the slot starting at ``slot_start``; None = unlimited."""
        local = datetime.fromtimestamp(slot_start, self.zone)
        minute = local.hour * 60 + local.minute
        for start, end, capacity in self.capacity_weekly[local.weekday()]:
            if start <= minute < end:
                return capacity
        return self.default_capacity

    def _day_bounds(self, day: date) -> tuple[float, float]:
        return _local_to_utc(day, 0, self.zone), _local_to_utc(day + _DAY, 0, self.zone)

    def iter_slots(self, start: float, end: float) -> Iterator[Slot]:
        """Every slot of the open windows that overlaps [start, end), in time order."""
        step = self.slot_minutes * 60
        tz = self.zone
        windows = [_ALWAYS] if self.always_open else self.open_windows(start, end)
        for w in windows:
            lo, hi = max(w.start, start), min(w.end, end)
            if hi <= lo:
                continue
            day = datetime.fromtimestamp(lo, tz).date()
            while True:
                d0, d1 = self._day_bounds(day)
                if d0 >= hi:
                    break
                b = d0 + max(0, (lo - d0) // step) * step
                while b < d1 and b < hi:
                    s, e = max(b, w.start), min(b + step, d1, w.end)
                    if e > lo:
                        yield Slot(s, e, self.slot_capacity(s))
                    b += step
                day += _DAY

    def slot_for(self, t: float) -> Slot | None:
        """The slot that instant ``t`` falls in, or None when the service is closed then."""
        w = _ALWAYS if self.always_open else self.window_at(t)
        if w is None:
            return None
        step = self.slot_minutes * 60
        d0, d1 = self._day_bounds(datetime.fromtimestamp(t, self.zone).date())
        b = d0 + ((t - d0) // step) * step
        s = max(b, w.start)
        return Slot(s, min(b + step, d1, w.end), self.slot_capacity(s))

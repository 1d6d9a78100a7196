"""The one ISO-8601 formatter: API times, stream entries and log timestamps all use it."""

from __future__ import annotations

from datetime import datetime
from time import gmtime as _gmtime
from zoneinfo import ZoneInfo

# utc_iso is on the dispatch hot path (three per published callback) and runs for every log
# line: the text up to the seconds is memoised per whole second, and the date part per day
# (plain dicts, cleared when full), which makes it several times cheaper than datetime +
# strftime for the same output.
_ISO_SECONDS: dict[int, str] = {}
_ISO_DAYS: dict[int, str] = {}


def _iso_second_prefix(s: int) -> str:
    day = s // 86400
    date_part = _ISO_DAYS.get(day)
    if date_part is None:
        if len(_ISO_DAYS) >= 1024:
            _ISO_DAYS.clear()
        y, mo, d = _gmtime(day * 86400)[:3]
        date_part = _ISO_DAYS[day] = f"{y:04d}-{mo:02d}-{d:02d}T"
    sod = s - day * 86400
    prefix = f"{date_part}{sod // 3600:02d}:{sod // 60 % 60:02d}:{sod % 60:02d}."
    if len(_ISO_SECONDS) >= 4096:
        _ISO_SECONDS.clear()
    _ISO_SECONDS[s] = prefix
    return prefix


def utc_iso(t: float) -> str:
    """Epoch seconds to ISO-8601 UTC with milliseconds, as GES writes times."""
    ms = round(t * 1000)
    s = ms // 1000
    return f"{_ISO_SECONDS.get(s) or _iso_second_prefix(s)}{ms - s * 1000:03d}Z"


def iso(t: float | None) -> str | None:
    """``utc_iso`` of ``t``; None stays None."""
    return None if t is None else utc_iso(t)


def local_iso(t: float, tz_name: str) -> str:
    """Epoch seconds to ISO-8601 in the given zone with its offset."""
    return datetime.fromtimestamp(t, ZoneInfo(tz_name)).isoformat(timespec="seconds")

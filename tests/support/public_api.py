"""Helpers for tests of the public API's booking rules: service configs, local times, errors."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from dialback.kit.timefmt import utc_iso
from dialback.services.schemas import ServiceConfig

API = "/engagement/v3"
NY = "America/New_York"
ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def config(**kw: Any) -> ServiceConfig:
    """A service config, always open unless ``businessHours`` is given."""
    kw.setdefault("businessHours", {"alwaysOpen": True})
    return ServiceConfig.model_validate(kw)


def local(day: date, hhmm: str, tz: str = NY, fold: int = 0) -> float:
    """Epoch seconds of ``hhmm`` on ``day`` in ``tz`` (``fold`` 1: the repeated hour's second)."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, h, m, tzinfo=ZoneInfo(tz), fold=fold).timestamp()


def z(t: float) -> str:
    """The API's UTC ISO 8601 form of ``t``."""
    return utc_iso(t)


def next_offset_change(tz: str, *, backwards: bool) -> date:
    """The next local date on which the clocks go back (or forward)."""
    zone = ZoneInfo(tz)
    day = datetime.now(zone).date() + timedelta(days=1)
    while True:
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone).utcoffset()
        morning = datetime(day.year, day.month, day.day, 6, tzinfo=zone).utcoffset()
        assert midnight is not None and morning is not None
        if (morning < midnight) if backwards else (morning > midnight):
            return day
        day += timedelta(days=1)


def assert_error(r: httpx.Response, code: int, starts: str) -> dict[str, Any]:
    """Check an error envelope (code, message start, corrId); return its body."""
    assert r.status_code == code, r.text
    body: dict[str, Any] = r.json()
    assert body["status"]["code"] == code
    assert body["status"]["message"].startswith(starts), body["status"]["message"]
    assert body["status"]["corrId"] == r.headers["x-correlation-id"]
    return body

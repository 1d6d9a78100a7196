"""Business hours, open-for and capacity slots in the service's zone, across DST changes."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from dialback.kit.timefmt import local_iso, utc_iso
from dialback.services import calendar, schemas
from dialback.services import repository as services_repo
from dialback.services.calendar import ServiceCalendar
from dialback.services.repository import ServiceCache, ServiceRecord
from dialback.services.schemas import BusinessHours, CapacityRule, ServiceConfig

NY = "America/New_York"
LON = "Europe/London"
H = 3600
ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# (zone, spring-forward Sunday, fall-back Sunday) in 2027.
DST_DAYS = [(NY, "2027-03-14", "2027-11-07"), (LON, "2027-03-28", "2027-10-31")]


def at(local: str, tz: str, fold: int = 0) -> float:
    """Epoch seconds of a local wall-clock time in ``tz``."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz), fold=fold).timestamp()


def utc(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def hours(tz: str, weekly: dict | None = None, **extra: object) -> BusinessHours:
    return BusinessHours.model_validate({"timezone": tz, "weekly": weekly or {}, **extra})


def cap(minutes: int = 30, default: int | None = 2, weekly: dict | None = None) -> CapacityRule:
    return CapacityRule.model_validate(
        {"slotMinutes": minutes, "defaultCapacity": default, "weekly": weekly or {}}
    )


def cal(bh: BusinessHours, rule: CapacityRule | None = None) -> ServiceCalendar:
    return ServiceCalendar.of(bh, rule)


def early_sunday(tz: str) -> BusinessHours:
    return hours(tz, {"sun": [{"start": "00:00", "end": "04:00"}]})


def local_hhmm(t: float, tz: str) -> str:
    return local_iso(t, tz)[11:16]


def day_slots(bh: BusinessHours, rule: CapacityRule, day: str) -> list[calendar.Slot]:
    start = at(f"{day}T00:00", bh.timezone)
    return list(cal(bh, rule).iter_slots(start, start + 26 * H))


# --- open windows, is_open and open_for across DST -------------------------------------------


@pytest.mark.parametrize(("tz", "spring", "fall"), DST_DAYS)
def test_early_window_lasts_3h_on_spring_forward_and_5h_on_fall_back(
    tz: str, spring: str, fall: str
) -> None:
    bh = early_sunday(tz)
    for day, length in ((spring, 3 * H), (fall, 5 * H)):
        start = at(f"{day}T00:00", tz)
        windows = cal(bh).open_windows(start - 1, start + 86400)
        assert [(w.start, w.end - w.start) for w in windows] == [(start, length)]
        assert cal(bh).open_for(start) == length
        assert cal(bh).open_for(start + H) == length - H
        assert cal(bh).is_open(start)
        assert cal(bh).is_open(start + length - 1)
        assert not cal(bh).is_open(start + length)
        assert cal(bh).open_for(start + length) == 0
        assert cal(bh).open_for(start - 1) == 0


@pytest.mark.parametrize(("tz", "spring", "fall"), DST_DAYS)
def test_window_closes_at_local_wall_clock_time_on_dst_days(
    tz: str, spring: str, fall: str
) -> None:
    bh = early_sunday(tz)
    for day in (spring, fall):
        w = cal(bh).window_at(at(f"{day}T00:10", tz))
        assert w is not None
        assert local_iso(w.start, tz)[11:19] == "00:00:00"
        assert local_iso(w.end, tz)[11:19] == "04:00:00"


def test_office_hours_keep_local_times_when_the_utc_offset_changes() -> None:
    bh = hours(NY, {d: [{"start": "09:00", "end": "17:00"}] for d in ALL_DAYS})
    before = cal(bh).window_at(at("2027-03-13T12:00", NY))
    after = cal(bh).window_at(at("2027-03-14T12:00", NY))
    assert before == calendar.Window(utc("2027-03-13T14:00Z"), utc("2027-03-13T22:00Z"))
    assert after == calendar.Window(utc("2027-03-14T13:00Z"), utc("2027-03-14T21:00Z"))
    autumn = cal(bh).window_at(at("2027-11-07T12:00", NY))
    assert autumn == calendar.Window(utc("2027-11-07T14:00Z"), utc("2027-11-07T22:00Z"))
    assert not cal(bh).is_open(utc("2027-03-14T21:30Z"))  # 17:30 EDT
    assert cal(bh).is_open(utc("2027-03-13T21:30Z"))  # 16:30 EST


def test_bounds_in_the_skipped_hour_map_to_the_transition() -> None:
    # 02:30 never happens in New York on 2027-03-14: the clock jumps from 02:00 EST to 03:00 EDT.
    transition = utc("2027-03-14T07:00Z")
    closing = hours(NY, {"sun": [{"start": "00:00", "end": "02:30"}]})
    w = cal(closing).window_at(at("2027-03-14T01:00", NY))
    assert w == calendar.Window(at("2027-03-14T00:00", NY), transition)
    assert cal(closing).open_for(at("2027-03-14T00:00", NY)) == 2 * H
    opening = hours(NY, {"sun": [{"start": "02:30", "end": "05:00"}]})
    assert not cal(opening).is_open(transition - 1)
    assert cal(opening).window_at(transition) == calendar.Window(
        transition, at("2027-03-14T05:00", NY)
    )
    assert cal(opening).next_opening(at("2027-03-14T00:00", NY)) == transition


def test_bounds_in_the_repeated_hour_open_first_and_close_last() -> None:
    bh = hours(LON, {"sun": [{"start": "01:30", "end": "03:00"}]})
    w = cal(bh).window_at(utc("2027-10-31T01:00Z"))
    # opens at the first 01:30 (BST, 00:30 UTC), closes at 03:00 GMT
    assert w == calendar.Window(utc("2027-10-31T00:30Z"), utc("2027-10-31T03:00Z"))
    ends = hours(LON, {"sun": [{"start": "00:00", "end": "01:30"}]})
    w = cal(ends).window_at(utc("2027-10-30T23:30Z"))
    assert w is not None and w.end == utc("2027-10-31T01:30Z")  # the second 01:30 (GMT)


def test_windows_crossing_midnight_are_merged() -> None:
    bh = hours(
        NY,
        {"mon": [{"start": "22:00", "end": "24:00"}], "tue": [{"start": "00:00", "end": "02:00"}]},
    )
    mon_22 = at("2027-01-04T22:00", NY)
    assert cal(bh).open_windows(mon_22, mon_22 + 6 * H) == [calendar.Window(mon_22, mon_22 + 4 * H)]
    assert cal(bh).open_for(at("2027-01-04T23:00", NY)) == 3 * H
    assert cal(bh).is_open(at("2027-01-05T00:30", NY))
    assert not cal(bh).is_open(at("2027-01-05T02:00", NY))
    slots = list(cal(bh, cap(30)).iter_slots(mon_22, mon_22 + 6 * H))
    assert [s.start for s in slots] == [mon_22 + i * 1800 for i in range(8)]


def test_midnight_merge_over_spring_forward() -> None:
    bh = hours(
        NY,
        {"sat": [{"start": "22:00", "end": "24:00"}], "sun": [{"start": "00:00", "end": "04:00"}]},
    )
    sat_22 = at("2027-03-13T22:00", NY)
    assert cal(bh).open_for(sat_22) == 5 * H  # 2 h on Saturday + 3 h on the short Sunday
    assert len(list(cal(bh, cap(30)).iter_slots(sat_22, sat_22 + 6 * H))) == 10


def test_closed_dates_close_the_day_and_break_the_midnight_merge() -> None:
    weekly = {
        d: [{"start": "00:00", "end": "02:00"}, {"start": "22:00", "end": "24:00"}]
        for d in ALL_DAYS
    }
    bh = hours(LON, weekly, closedDates=["2027-06-15"])
    assert not cal(bh).is_open(at("2027-06-15T01:00", LON))
    assert not cal(bh).is_open(at("2027-06-15T23:00", LON))
    assert cal(bh).open_for(at("2027-06-14T23:00", LON)) == H  # not merged into the 15th
    assert cal(bh).next_opening(at("2027-06-15T00:00", LON)) == at("2027-06-16T00:00", LON)
    assert cal(bh, cap()).slot_for(at("2027-06-15T01:00", LON)) is None
    day = at("2027-06-15T00:00", LON)
    assert list(cal(bh, cap()).iter_slots(day, at("2027-06-16T00:00", LON))) == []
    assert cal(bh).open_for(at("2027-06-16T23:00", LON)) == 3 * H  # merged with the 17th


def test_end_2400_closes_at_local_midnight() -> None:
    bh = hours(NY, {"sat": [{"start": "20:00", "end": "24:00"}]})
    # Saturday 2027-11-06: the night before fall-back; midnight is still EDT.
    w = cal(bh).window_at(at("2027-11-06T21:00", NY))
    assert w == calendar.Window(at("2027-11-06T20:00", NY), at("2027-11-07T00:00", NY))
    assert w.end - w.start == 4 * H
    assert cal(bh).open_for(at("2027-11-06T23:00", NY)) == H
    assert not cal(bh).is_open(at("2027-11-07T00:00", NY))


def test_always_open() -> None:
    bh = BusinessHours.model_validate(
        {"alwaysOpen": True, "timezone": NY, "closedDates": ["2027-03-14"]}
    )
    t = at("2027-03-14T02:59", NY)
    assert cal(bh).is_open(t)
    assert cal(bh).open_for(t) == 8 * 86400
    assert cal(bh).next_opening(t) == t
    assert cal(bh).open_windows(t, t + H) == [calendar.Window(t, t + H)]
    # A whole local day has 46 thirty-minute slots on spring-forward, 50 on fall-back.
    start = at("2027-03-14T00:00", NY)
    assert len(list(cal(bh, cap(30)).iter_slots(start, at("2027-03-15T00:00", NY)))) == 46
    start = at("2027-11-07T00:00", NY)
    assert len(list(cal(bh, cap(30)).iter_slots(start, at("2027-11-08T00:00", NY)))) == 50


def test_always_open_slots_follow_the_local_clock_and_have_full_length() -> None:
    bh = BusinessHours.model_validate({"alwaysOpen": True, "timezone": "Asia/Kolkata"})
    t = at("2027-01-01T10:10", "Asia/Kolkata")  # UTC+05:30
    slot = cal(bh, cap(60)).slot_for(t)
    assert slot is not None
    assert local_iso(slot.start, "Asia/Kolkata") == "2027-01-01T10:00:00+05:30"
    assert slot.end - slot.start == H
    listed = list(cal(bh, cap(60)).iter_slots(t, t + 2 * H))
    assert listed[0] == slot
    assert [s.end - s.start for s in listed] == [H, H, H]


def test_spring_forward_time_outside_window_is_closed() -> None:
    bh = early_sunday(NY)
    assert not cal(bh).is_open(at("2027-03-14T04:00", NY))
    assert cal(bh).open_for(at("2027-03-14T04:00", NY)) == 0
    assert cal(bh).next_opening(at("2027-03-14T05:00", NY)) == at("2027-03-21T00:00", NY)


# --- slots ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tz", "spring", "fall"), DST_DAYS)
@pytest.mark.parametrize(
    ("minutes", "spring_count", "fall_count", "normal_count"), [(30, 6, 10, 8), (60, 3, 5, 4)]
)
def test_slot_counts_on_dst_days(
    tz: str,
    spring: str,
    fall: str,
    minutes: int,
    spring_count: int,
    fall_count: int,
    normal_count: int,
) -> None:
    bh = early_sunday(tz)
    rule = cap(minutes)
    assert len(day_slots(bh, rule, spring)) == spring_count
    assert len(day_slots(bh, rule, fall)) == fall_count
    assert len(day_slots(bh, rule, "2027-06-06")) == normal_count
    for day in (spring, fall):
        slots = day_slots(bh, rule, day)
        assert all(s.end - s.start == minutes * 60 for s in slots)
        assert all(a.end == b.start for a, b in itertools.pairwise(slots))


def test_spring_forward_slots_skip_the_missing_hour() -> None:
    slots = day_slots(early_sunday(NY), cap(30), "2027-03-14")
    assert [local_hhmm(s.start, NY) for s in slots] == [
        "00:00",
        "00:30",
        "01:00",
        "01:30",
        "03:00",
        "03:30",
    ]
    slots = day_slots(early_sunday(LON), cap(60), "2027-03-28")
    assert [local_hhmm(s.start, LON) for s in slots] == ["00:00", "02:00", "03:00"]


def test_fall_back_slots_repeat_the_doubled_hour() -> None:
    slots = day_slots(early_sunday(NY), cap(60), "2027-11-07")
    assert [local_iso(s.start, NY)[11:] for s in slots] == [
        "00:00:00-04:00",
        "01:00:00-04:00",
        "01:00:00-05:00",
        "02:00:00-05:00",
        "03:00:00-05:00",
    ]


def test_slot_for_aligns_to_the_slot_grid() -> None:
    bh = hours(NY, {"wed": [{"start": "09:00", "end": "17:00"}]})
    rule = cap(30)
    slot = cal(bh, rule).slot_for(at("2027-01-06T10:44:59", NY))
    assert slot == calendar.Slot(at("2027-01-06T10:30", NY), at("2027-01-06T11:00", NY), 2)
    slot = cal(bh, rule).slot_for(at("2027-01-06T10:00", NY))
    assert slot is not None and slot.start == at("2027-01-06T10:00", NY)
    assert cal(bh, cap(60)).slot_for(at("2027-01-06T16:59", NY)) == calendar.Slot(
        at("2027-01-06T16:00", NY), at("2027-01-06T17:00", NY), 2
    )
    assert cal(bh, rule).slot_for(at("2027-01-06T17:00", NY)) is None
    assert cal(bh, rule).slot_for(at("2027-01-06T08:59", NY)) is None


def test_off_grid_window_starts_with_a_short_slot() -> None:
    bh = hours(LON, {"fri": [{"start": "09:15", "end": "10:40"}]})
    slots = day_slots(bh, cap(30), "2027-01-08")
    assert [(local_hhmm(s.start, LON), local_hhmm(s.end, LON)) for s in slots] == [
        ("09:15", "09:30"),
        ("09:30", "10:00"),
        ("10:00", "10:30"),
        ("10:30", "10:40"),
    ]
    assert cal(bh, cap(30)).slot_for(at("2027-01-08T09:20", LON)) == slots[0]
    assert cal(bh, cap(30)).slot_for(at("2027-01-08T10:35", LON)) == slots[-1]


@pytest.mark.parametrize(
    "weekly",
    [
        {"sun": [{"start": "00:00", "end": "04:00"}], "sat": [{"start": "22:00", "end": "24:00"}]},
        # A chain of merged days longer than any look-back: Sunday opens off the slot grid.
        {
            **{d: [{"start": "00:00", "end": "24:00"}] for d in ALL_DAYS[:6]},
            "sun": [{"start": "08:15", "end": "24:00"}],
        },
        {d: [{"start": "07:45", "end": "19:10"}] for d in ALL_DAYS},
    ],
)
@pytest.mark.parametrize("tz", [NY, LON])
@pytest.mark.parametrize("minutes", [30, 60])
def test_slot_for_agrees_with_iter_slots(weekly: dict, tz: str, minutes: int) -> None:
    """Booking (slot_for) and availability (iter_slots) must name the same slots."""
    c = cal(hours(tz, weekly), cap(minutes))  # one compiled calendar, as a loaded service has
    for first in ("2027-03-10", "2027-11-03"):  # a week over each DST change
        start = at(f"{first}T00:00", tz)
        listed = list(c.iter_slots(start, start + 7 * 86400))
        assert listed
        for s in listed:
            for t in (s.start, (s.start + s.end) / 2, s.end - 1):
                assert c.slot_for(t) == s
        # A query starting elsewhere names the same slots.
        mid = start + 3 * 86400 + 1234
        later = list(c.iter_slots(mid, start + 7 * 86400))
        assert later == [s for s in listed if s.end > mid]


def test_iter_slots_includes_the_slot_in_progress() -> None:
    bh = hours(NY, {"wed": [{"start": "09:00", "end": "17:00"}]})
    slots = list(
        cal(bh, cap(60)).iter_slots(at("2027-01-06T10:30", NY), at("2027-01-06T12:30", NY))
    )
    assert [local_hhmm(s.start, NY) for s in slots] == ["10:00", "11:00", "12:00"]


# --- capacity ---------------------------------------------------------------------------------


def test_capacity_per_weekday_window_and_default() -> None:
    bh = hours(NY, {d: [{"start": "08:00", "end": "18:00"}] for d in ("mon", "tue")})
    rule = cap(
        60,
        default=1,
        weekly={
            "mon": [
                {"start": "09:00", "end": "12:00", "capacity": 5},
                {"start": "12:00", "end": "24:00", "capacity": 0},
            ]
        },
    )
    mon = {local_hhmm(s.start, NY): s.total for s in day_slots(bh, rule, "2027-01-04")}
    assert mon == {
        "08:00": 1,
        "09:00": 5,
        "10:00": 5,
        "11:00": 5,
        "12:00": 0,
        "13:00": 0,
        "14:00": 0,
        "15:00": 0,
        "16:00": 0,
        "17:00": 0,
    }
    tue = {s.total for s in day_slots(bh, rule, "2027-01-05")}
    assert tue == {1}
    unlimited = cap(
        30, default=None, weekly={"mon": [{"start": "09:00", "end": "10:00", "capacity": 3}]}
    )
    totals = [s.total for s in day_slots(bh, unlimited, "2027-01-04")]
    assert totals[:4] == [None, None, 3, 3] and set(totals[4:]) == {None}


def test_capacity_windows_use_local_time_across_dst() -> None:
    bh = hours(LON, {"sun": [{"start": "00:00", "end": "04:00"}]})
    rule = cap(60, default=9, weekly={"sun": [{"start": "01:00", "end": "02:00", "capacity": 4}]})
    spring = [(local_hhmm(s.start, LON), s.total) for s in day_slots(bh, rule, "2027-03-28")]
    assert spring == [("00:00", 9), ("02:00", 9), ("03:00", 9)]  # 01:00 never happens
    fall = [(local_hhmm(s.start, LON), s.total) for s in day_slots(bh, rule, "2027-10-31")]
    assert fall == [("00:00", 9), ("01:00", 4), ("01:00", 4), ("02:00", 9), ("03:00", 9)]


def test_capacity_window_may_end_at_2400() -> None:
    bh = hours(NY, {"fri": [{"start": "22:00", "end": "24:00"}]})
    rule = cap(
        30, default=None, weekly={"fri": [{"start": "23:30", "end": "24:00", "capacity": 7}]}
    )
    assert [s.total for s in day_slots(bh, rule, "2027-01-08")] == [None, None, None, 7]


# --- formatting and configuration -------------------------------------------------------------


def test_utc_iso_rounds_to_milliseconds_without_losing_a_second() -> None:
    assert utc_iso(0) == "1970-01-01T00:00:00.000Z"
    assert utc_iso(1.9999999) == "1970-01-01T00:00:02.000Z"
    assert utc_iso(utc("2027-03-14T07:00:00.250Z")) == "2027-03-14T07:00:00.250Z"
    assert local_iso(utc("2027-03-14T07:00Z"), NY) == "2027-03-14T03:00:00-04:00"


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "Europe", "America", "", "../etc/passwd", "x" * 300]
)
def test_unknown_time_zones_are_a_validation_error(zone: str) -> None:
    with pytest.raises(ValidationError, match="time zone"):
        ServiceConfig.model_validate({"businessHours": {"timezone": zone}})


def test_hours_must_be_well_formed() -> None:
    for rng in (
        {"start": "09:00", "end": "09:00"},
        {"start": "24:00", "end": "24:00"},
        {"start": "9:00", "end": "10:00"},
        {"start": "10:00", "end": "24:30"},
    ):
        with pytest.raises(ValidationError):
            hours(NY, {"mon": [rng]})
    with pytest.raises(ValidationError):
        CapacityRule.model_validate({"slotMinutes": 45})


# --- the compiled calendar --------------------------------------------------------------------


def test_compile_turns_the_configuration_into_minutes_and_sets() -> None:
    cfg = ServiceConfig.model_validate(
        {
            "businessHours": {
                "timezone": LON,
                "weekly": {
                    "tue": [{"start": "09:30", "end": "12:00"}, {"start": "13:00", "end": "24:00"}]
                },
                "closedDates": ["2027-12-25", "2027-12-26"],
            },
            "capacity": {
                "slotMinutes": 60,
                "defaultCapacity": 4,
                "weekly": {"sun": [{"start": "00:00", "end": "01:30", "capacity": 9}]},
            },
        }
    )
    c = ServiceCalendar.compile(cfg)
    assert c.zone == ZoneInfo(LON) and c.timezone == LON and not c.always_open
    assert c.weekly[1] == ((570, 720), (780, 1440))
    assert all(c.weekly[d] == () for d in (0, 2, 3, 4, 5, 6))
    assert c.closed == frozenset({date(2027, 12, 25), date(2027, 12, 26)})
    assert (c.slot_minutes, c.default_capacity) == (60, 4)
    assert c.capacity_weekly[6] == ((0, 90, 9),)
    default = ServiceCalendar.of(hours(NY))
    assert (default.slot_minutes, default.default_capacity) == (30, None)


def _no_reparse(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("configuration re-parsed on the request path")

    monkeypatch.setattr(calendar, "hhmm_to_minutes", refuse)
    monkeypatch.setattr(schemas, "hhmm_to_minutes", refuse)
    monkeypatch.setattr(calendar, "ZoneInfo", refuse)
    monkeypatch.setattr(ServiceConfig, "model_validate", refuse)


class _Conn:
    async def __aenter__(self) -> _Conn:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None


class _Engine:
    def connect(self) -> _Conn:
        return _Conn()


async def test_a_create_path_lookup_does_not_reparse_the_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = ServiceConfig.model_validate(
        {
            "businessHours": {
                "timezone": NY,
                "weekly": {"wed": [{"start": "09:00", "end": "17:00"}]},
                "closedDates": ["2027-01-13"],
            },
            "capacity": {"weekly": {"wed": [{"start": "10:00", "end": "11:00", "capacity": 3}]}},
        }
    )
    loads = 0

    async def get_service(_conn: object, tenant_id: str, name: str) -> ServiceRecord:
        nonlocal loads
        loads += 1
        return ServiceRecord("svc-id", tenant_id, name, cfg, 0.0, 0.0)

    monkeypatch.setattr(services_repo, "get_service", get_service)
    cache = ServiceCache(_Engine(), ttl=60)  # type: ignore[arg-type]
    first = await cache.get("t", "svc")  # loaded and compiled once
    assert first is not None
    _no_reparse(monkeypatch)
    svc = await cache.get("t", "svc")
    assert svc is first and loads == 1
    cal_ = svc.calendar
    wed_10 = at("2027-01-06T10:15", NY)
    assert cal_.is_open(wed_10)
    assert cal_.slot_for(wed_10) == calendar.Slot(
        at("2027-01-06T10:00", NY), at("2027-01-06T10:30", NY), 3
    )
    assert cal_.open_for(wed_10) == at("2027-01-06T17:00", NY) - wed_10
    assert cal_.next_opening(at("2027-01-06T18:00", NY)) == at("2027-01-20T09:00", NY)
    assert not cal_.is_open(at("2027-01-13T10:00", NY))  # closed date
    assert len(list(cal_.iter_slots(wed_10, at("2027-01-06T17:00", NY)))) == 14

"""The service editor's form: a ``ServiceConfig`` as form fields (the capacity calendar as a
week grid of 30- or 60-minute cells) and back, with each validation error mapped to the field
it belongs to."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from dialback.services.schemas import (
    WEEKDAYS,
    CapacityWindow,
    ServiceConfig,
    TimeRange,
    hhmm_to_minutes,
)

DAY_LABELS = {
    "mon": "Mon",
    "tue": "Tue",
    "wed": "Wed",
    "thu": "Thu",
    "fri": "Fri",
    "sat": "Sat",
    "sun": "Sun",
}
RETRY_REASONS = ("no-answer", "busy", "failed")
GENERAL = "_form"
"""The key of errors that belong to no one field (shown above the form)."""
_DAY_MINUTES = 24 * 60
_SPLIT = re.compile(r"[,;\s]+")
_DASH = re.compile(r"\s*[-\u2013]\s*")  # a hyphen or an en dash, spaced or not

# Where a validation error's ``loc`` (by alias) is shown: the longest matching prefix wins.
_FIELDS: dict[tuple[str, ...], str] = {
    ("businessHours", "timezone"): "tz",
    ("businessHours", "alwaysOpen"): "always_open",
    ("businessHours", "closedDates"): "closed_dates",
    ("capacity", "slotMinutes"): "slot_minutes",
    ("capacity", "defaultCapacity"): "default_capacity",
    ("validation", "defaultCountry"): "default_country",
    ("validation", "allowedCountries"): "allowed_countries",
    ("validation", "blockedPatterns"): "blocked_patterns",
    ("validation", "allowPremium"): "allow_premium",
    ("throttle", "maxOpenPerNumber"): "max_open",
    ("throttle", "maxPerNumberPerDay"): "max_per_day",
    ("retry", "maxAttempts"): "max_attempts",
    ("retry", "delaySeconds"): "delay_seconds",
    ("retry", "retryOn"): "retry_on",
    ("immediateCallbackEnabled",): "immediate",
    ("scheduledCallbackEnabled",): "scheduled",
    **{("businessHours", "weekly", d): f"hours-{d}" for d in WEEKDAYS},
}


def hhmm(minutes: int) -> str:
    """570 -> '09:30'; 1440 -> '24:00'."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def cell_name(day: str, minute: int) -> str:
    """The form field of one capacity cell."""
    return f"cap-{day}-{minute}"


def slot_starts(step: int) -> range:
    """The local minutes at which the slots of a day start."""
    return range(0, _DAY_MINUTES, step)


def _ranges_text(ranges: Sequence[TimeRange]) -> str:
    return ", ".join(f"{r.start}-{r.end}" for r in ranges)


def _window_at(windows: Sequence[CapacityWindow], minute: int) -> CapacityWindow | None:
    # As ServiceCalendar.slot_capacity reads it: the first window holding the slot's start.
    for w in windows:
        if hhmm_to_minutes(w.start) <= minute < hhmm_to_minutes(w.end):
            return w
    return None


def values_of(cfg: ServiceConfig) -> dict[str, Any]:
    """The form's field values for a configuration (strings; lists for multi-valued fields)."""
    hours, cap, val = cfg.business_hours, cfg.capacity, cfg.validation
    out: dict[str, Any] = {
        "tz": hours.timezone,
        "always_open": hours.always_open,
        "closed_dates": "\n".join(d.isoformat() for d in hours.closed_dates),
        "slot_minutes": str(cap.slot_minutes),
        "default_capacity": "" if cap.default_capacity is None else str(cap.default_capacity),
        "grid_minutes": str(cap.slot_minutes),
        "default_country": val.default_country,
        "allowed_countries": ", ".join(val.allowed_countries or []),
        "blocked_patterns": "\n".join(val.blocked_patterns),
        "allow_premium": val.allow_premium,
        "max_open": str(cfg.throttle.max_open_per_number),
        "max_per_day": str(cfg.throttle.max_per_number_per_day),
        "max_attempts": str(cfg.retry.max_attempts),
        "delay_seconds": str(cfg.retry.delay_seconds),
        "retry_on": list(cfg.retry.retry_on),
        "immediate": cfg.immediate_enabled,
        "scheduled": cfg.scheduled_enabled,
    }
    for day in WEEKDAYS:
        out[f"hours-{day}"] = _ranges_text(hours.weekly.get(day, []))
        windows = cap.weekly.get(day, [])
        for m in slot_starts(cap.slot_minutes):
            w = _window_at(windows, m)
            out[cell_name(day, m)] = "" if w is None else str(w.capacity)
    return out


def unaligned(cfg: ServiceConfig) -> bool:
    """Whether a capacity window starts or ends off the slot grid (the grid shows each slot's
    value at its start; saving from the grid stores the windows on slot boundaries)."""
    step = cfg.capacity.slot_minutes
    return any(
        hhmm_to_minutes(w.start) % step or hhmm_to_minutes(w.end) % step
        for windows in cfg.capacity.weekly.values()
        for w in windows
    )


@dataclass(frozen=True)
class GridRow:
    """One slot of the day across the week: its start and, per weekday, (field, open)."""

    minute: int
    label: str
    end_label: str
    cells: tuple[tuple[str, str, bool], ...]  # (day, field name, open then)


def grid_rows(cfg: ServiceConfig, step: int) -> list[GridRow]:
    """The week grid's rows for slot length ``step``; a cell is open when the service's weekly
    hours overlap it."""
    hours = cfg.business_hours
    rows = []
    for m in slot_starts(step):
        cells = []
        for day in WEEKDAYS:
            is_open = hours.always_open or any(
                hhmm_to_minutes(r.start) < m + step and m < hhmm_to_minutes(r.end)
                for r in hours.weekly.get(day, [])
            )
            cells.append((day, cell_name(day, m), is_open))
        rows.append(GridRow(m, hhmm(m), hhmm(m + step), tuple(cells)))
    return rows


def shown_rows(rows: Sequence[GridRow], values: Mapping[str, Any]) -> list[GridRow]:
    """The rows a read-only view shows: those open on some day or with a limit on some day."""
    return [r for r in rows if any(o or values.get(f) for _, f, o in r.cells)]


@dataclass
class Parsed:
    """A form read back: the configuration (None when invalid) and the errors per field."""

    values: dict[str, Any]
    config: ServiceConfig | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        """Record an error of field ``name``."""
        found = self.errors.setdefault(name, [])
        if message not in found:
            found.append(message)


def _text(form: Mapping[str, Any], name: str, limit: int = 4000) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def _int_or_text(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


def parse(form: Any) -> Parsed:
    """The configuration a submitted editor form describes, or the errors of its fields."""
    get = form.get
    values: dict[str, Any] = {
        name: _text(form, name)
        for name in (
            "tz",
            "closed_dates",
            "slot_minutes",
            "default_capacity",
            "grid_minutes",
            "default_country",
            "allowed_countries",
            "blocked_patterns",
            "max_open",
            "max_per_day",
            "max_attempts",
            "delay_seconds",
        )
    }
    for box in ("always_open", "allow_premium", "immediate", "scheduled"):
        values[box] = get(box) == "on"
    values["retry_on"] = [r for r in form.getlist("retry_on") if r in RETRY_REASONS]
    out = Parsed(values)
    locs: dict[tuple[Any, ...], str] = dict(_FIELDS)

    weekly: dict[str, list[dict[str, str]]] = {}
    for day in WEEKDAYS:
        name = f"hours-{day}"
        text = values[name] = _text(form, name, 500)
        ranges = []
        for piece in (p for p in _SPLIT.split(_DASH.sub("-", text)) if p):
            ends = piece.split("-")
            if len(ends) != 2:
                out.add(name, f"{piece!r} is not a range like 09:00-17:00")
                continue
            ranges.append({"start": ends[0], "end": ends[1]})
        if ranges:
            weekly[day] = ranges

    grid = values["grid_minutes"]
    step = int(grid) if grid in ("30", "60") else 0
    if not step:
        out.add(GENERAL, "the capacity grid is missing or damaged: reload the page")
    cap_weekly: dict[str, list[dict[str, Any]]] = {}
    for day in WEEKDAYS:
        cells: list[tuple[int, int | None]] = []
        for m in slot_starts(step) if step else ():
            name = cell_name(day, m)
            raw = values[name] = _text(form, name, 20)
            if not raw:
                cells.append((m, None))
            elif raw.lstrip("-").isdigit():
                cells.append((m, int(raw)))
            else:
                out.add(name, f"{raw!r} is not a whole number (leave it empty for no limit)")
                cells.append((m, None))
        windows: list[dict[str, Any]] = []
        for m, cap in cells:
            if cap is None:
                continue
            last = windows[-1] if windows else None
            if last is not None and last["capacity"] == cap and last["_end"] == m:
                last["_end"] = m + step
            else:
                windows.append({"capacity": cap, "_start": m, "_end": m + step})
                locs[("capacity", "weekly", day, len(windows) - 1)] = cell_name(day, m)
        if windows:
            cap_weekly[day] = [
                {"start": hhmm(w["_start"]), "end": hhmm(w["_end"]), "capacity": w["capacity"]}
                for w in windows
            ]

    closed = [d for d in _SPLIT.split(values["closed_dates"]) if d]
    countries = [c for c in _SPLIT.split(values["allowed_countries"]) if c]
    patterns = [p.strip() for p in values["blocked_patterns"].splitlines() if p.strip()]
    validation: dict[str, Any] = {
        "allowedCountries": countries or None,
        "blockedPatterns": patterns,
        "allowPremium": values["allow_premium"],
    }
    if values["default_country"]:  # left empty: the default, and the put's warning says so
        validation["defaultCountry"] = values["default_country"]
    body: dict[str, Any] = {
        "businessHours": {
            "timezone": values["tz"] or "UTC",
            "alwaysOpen": values["always_open"],
            "weekly": weekly,
            "closedDates": closed,
        },
        "capacity": {
            "slotMinutes": _int_or_text(values["slot_minutes"]),
            "defaultCapacity": (
                _int_or_text(values["default_capacity"]) if values["default_capacity"] else None
            ),
            "weekly": cap_weekly,
        },
        "validation": validation,
        "throttle": {
            "maxOpenPerNumber": _int_or_text(values["max_open"]),
            "maxPerNumberPerDay": _int_or_text(values["max_per_day"]),
        },
        "retry": {
            "maxAttempts": _int_or_text(values["max_attempts"]),
            "delaySeconds": _int_or_text(values["delay_seconds"]),
            "retryOn": values["retry_on"],
        },
        "immediateCallbackEnabled": values["immediate"],
        "scheduledCallbackEnabled": values["scheduled"],
    }
    try:
        config = ServiceConfig.model_validate(body)
    except ValidationError as exc:
        for err in exc.errors():
            out.add(_field_of(tuple(err["loc"]), locs), _message(err))
        return out
    if not out.errors:
        out.config = config
    return out


def _field_of(loc: tuple[Any, ...], locs: Mapping[tuple[Any, ...], str]) -> str:
    for n in range(len(loc), 0, -1):
        found = locs.get(loc[:n])
        if found is not None:
            return found
    return GENERAL


def _message(err: Mapping[str, Any]) -> str:
    loc = tuple(err.get("loc", ()))
    error = err.get("ctx", {}).get("error")
    text = str(error) if err.get("type") == "value_error" and error is not None else err["msg"]
    # Which of several values: "range 2", "date 1", "pattern 3".
    if len(loc) >= 4 and loc[:2] == ("businessHours", "weekly") and isinstance(loc[3], int):
        end = f" {loc[4]}" if len(loc) >= 5 else ""
        text = f"range {loc[3] + 1}{end}: {text}"
    elif len(loc) >= 3 and isinstance(loc[2], int):
        text = f"value {loc[2] + 1}: {text}"
    return str(text)

"""The service editor's form: a configuration shown as fields (the capacity week grid) reads
back as the same configuration; errors land on the field they belong to."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import FormData

from dialback.services.schemas import ServiceConfig
from dialback.ui import service_form as sf


def _posted(values: dict[str, Any], **changes: Any) -> FormData:
    items: list[tuple[str, str]] = []
    for k, v in {**values, **changes}.items():
        if isinstance(v, list):
            items += [(k, x) for x in v]
        elif v is True:
            items.append((k, "on"))
        elif v is not False:
            items.append((k, str(v)))
    return FormData(items)


CONFIGS = [
    {"businessHours": {"alwaysOpen": True}, "validation": {"defaultCountry": "US"}},
    {
        "businessHours": {
            "timezone": "America/New_York",
            "weekly": {
                "mon": [{"start": "08:00", "end": "12:00"}, {"start": "13:00", "end": "24:00"}],
                "sat": [{"start": "10:00", "end": "14:00"}],
            },
            "closedDates": ["2026-12-25", "2027-01-01"],
        },
        "capacity": {
            "slotMinutes": 60,
            "defaultCapacity": 3,
            "weekly": {
                "mon": [
                    {"start": "08:00", "end": "10:00", "capacity": 0},
                    {"start": "10:00", "end": "12:00", "capacity": 5},
                ],
                "sun": [{"start": "23:00", "end": "24:00", "capacity": 9}],
            },
        },
        "validation": {
            "defaultCountry": "GB",
            "allowedCountries": ["GB", "IE"],
            "blockedPatterns": ["^\\+4470", "^\\+44 ?9"],
            "allowPremium": True,
        },
        "throttle": {"maxOpenPerNumber": 1, "maxPerNumberPerDay": 3},
        "retry": {"maxAttempts": 5, "delaySeconds": 300, "retryOn": ["busy"]},
        "immediateCallbackEnabled": False,
    },
]


@pytest.mark.parametrize("body", CONFIGS)
def test_a_configuration_reads_back_from_its_form(body: dict[str, Any]) -> None:
    cfg = ServiceConfig.model_validate(body)
    parsed = sf.parse(_posted(sf.values_of(cfg)))
    assert parsed.errors == {}
    assert parsed.config is not None and parsed.config.dump() == cfg.dump()


def test_grid_cells_become_windows_and_bad_cells_are_named() -> None:
    cfg = ServiceConfig.model_validate(CONFIGS[1])
    values = sf.values_of(cfg)
    assert values["cap-mon-480"] == "0" and values["cap-mon-660"] == "5"
    assert values["cap-tue-480"] == "" and "cap-mon-510" not in values  # 60-minute rows
    changed = sf.parse(_posted(values, **{"cap-tue-0": "2", "cap-tue-60": "2", "cap-wed-120": "1"}))
    assert changed.config is not None
    weekly = changed.config.capacity.weekly
    assert [(w.start, w.end, w.capacity) for w in weekly["tue"]] == [("00:00", "02:00", 2)]
    assert [(w.start, w.end, w.capacity) for w in weekly["wed"]] == [("02:00", "03:00", 1)]
    bad = sf.parse(
        _posted(values, **{"cap-tue-60": "x", "cap-fri-0": "100001", "grid_minutes": "60"})
    )
    assert bad.config is None
    assert "'x' is not a whole number" in bad.errors["cap-tue-60"][0]
    assert "less than or equal to 100000" in bad.errors["cap-fri-0"][0]
    damaged = sf.parse(_posted(values, grid_minutes="45"))
    assert damaged.config is None and sf.GENERAL in damaged.errors


def test_hours_text_accepts_dashes_spaces_and_separators() -> None:
    cfg = ServiceConfig.model_validate(CONFIGS[0])
    values = sf.values_of(cfg)
    parsed = sf.parse(_posted(values, **{"hours-thu": "noon, 9-5", "always_open": False}))
    assert parsed.errors == {
        "hours-thu": [
            "'noon' is not a range like 09:00-17:00",
            "range 1 start: must be HH:MM (00:00-24:00)",
            "range 1 end: must be HH:MM (00:00-24:00)",
        ]
    }
    parsed = sf.parse(_posted(values, **{"hours-thu": "09:00 \u2013 12:00; 13:00 - 17:30"}))
    assert parsed.config is not None
    assert [(r.start, r.end) for r in parsed.config.business_hours.weekly["thu"]] == [
        ("09:00", "12:00"),
        ("13:00", "17:30"),
    ]


def test_an_unaligned_window_is_flagged() -> None:
    cfg = ServiceConfig.model_validate(
        {"capacity": {"weekly": {"mon": [{"start": "09:15", "end": "10:00", "capacity": 1}]}}}
    )
    assert sf.unaligned(cfg)
    assert sf.values_of(cfg)["cap-mon-540"] == ""  # the 09:00 slot starts before the window
    assert sf.values_of(cfg)["cap-mon-570"] == "1"

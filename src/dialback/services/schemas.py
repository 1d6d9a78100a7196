"""Configuration models of a service: business hours, capacity, validation, throttles, retries."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialback.kit.text import SafeStr

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class Strict(BaseModel):
    """Base for config models: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


def hhmm_to_minutes(value: str) -> int:
    """'09:30' -> 570; '24:00' -> 1440."""
    h, m = value.split(":")
    return int(h) * 60 + int(m)


class TimeRange(Strict):
    """A local-time window within one day; ``end`` may be ``24:00``."""

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("must be HH:MM (00:00-24:00)")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if hhmm_to_minutes(self.end) <= hhmm_to_minutes(self.start):
            raise ValueError("end must be after start")
        return self


def _check_tz(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Europe" is a folder
        raise ValueError(f"unknown IANA time zone {v!r}") from exc
    return v


class BusinessHours(Strict):
    """Weekly opening hours in an IANA time zone, with closed dates."""

    timezone: str = "UTC"
    always_open: bool = Field(False, alias="alwaysOpen")
    weekly: dict[Weekday, list[TimeRange]] = Field(default_factory=dict)
    closed_dates: list[date] = Field(default_factory=list, alias="closedDates")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_tz(v)


class CapacityWindow(TimeRange):
    """Maximum scheduled callbacks per slot within a local-time window."""

    capacity: int = Field(ge=0, le=100_000)


class CapacityRule(Strict):
    """Weekly calendar of the maximum number of scheduled callbacks per slot."""

    slot_minutes: Literal[30, 60] = Field(30, alias="slotMinutes")
    default_capacity: int | None = Field(None, ge=0, le=100_000, alias="defaultCapacity")
    weekly: dict[Weekday, list[CapacityWindow]] = Field(default_factory=dict)


class ValidationRule(Strict):
    """Country and number validation applied before a callback is accepted."""

    default_country: str = Field("US", alias="defaultCountry", min_length=2, max_length=2)
    allowed_countries: list[str] | None = Field(None, alias="allowedCountries")
    blocked_patterns: list[SafeStr] = Field(default_factory=list, alias="blockedPatterns")
    allow_premium: bool = Field(False, alias="allowPremium")

    @field_validator("default_country")
    @classmethod
    def _country(cls, v: str) -> str:
        v = v.upper()
        if v not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region code {v!r}")
        return v

    @field_validator("allowed_countries")
    @classmethod
    def _countries(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        out = [c.upper() for c in v]
        bad = [c for c in out if c not in phonenumbers.SUPPORTED_REGIONS]
        if bad:
            raise ValueError(f"unknown region codes {bad}")
        return out

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"invalid pattern {p!r}: {exc}") from exc
        return v


class NumberThrottle(Strict):
    """Per phone number limits."""

    max_open_per_number: int = Field(2, ge=1, le=1000, alias="maxOpenPerNumber")
    max_per_number_per_day: int = Field(6, ge=1, le=10_000, alias="maxPerNumberPerDay")


RetryReason = Literal["no-answer", "busy", "failed"]
_DEFAULT_RETRY_ON: tuple[RetryReason, ...] = ("no-answer", "busy", "failed")


class RetryPolicy(Strict):
    """How often and how soon an unanswered callback is tried again."""

    max_attempts: int = Field(3, ge=1, le=20, alias="maxAttempts")
    delay_seconds: int = Field(60, ge=0, le=7 * 24 * 3600, alias="delaySeconds")
    retry_on: list[RetryReason] = Field(
        default_factory=lambda: list(_DEFAULT_RETRY_ON), alias="retryOn"
    )


class ServiceConfig(Strict):
    """Everything configured on one service (virtual queue)."""

    business_hours: BusinessHours = Field(default_factory=BusinessHours, alias="businessHours")
    capacity: CapacityRule = Field(default_factory=CapacityRule)
    validation: ValidationRule = Field(default_factory=ValidationRule)
    throttle: NumberThrottle = Field(default_factory=NumberThrottle)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    immediate_enabled: bool = Field(True, alias="immediateCallbackEnabled")
    scheduled_enabled: bool = Field(True, alias="scheduledCallbackEnabled")

    def dump(self) -> dict:
        """JSON-ready form with GES-style camelCase keys."""
        return self.model_dump(mode="json", by_alias=True)

    def warnings(self) -> list[str]:
        """What this configuration does that its author may not expect (the admin PUT shows it)."""
        found = []
        hours = self.business_hours
        if not hours.always_open and not any(hours.weekly.values()):
            found.append(
                "no business hours: the service is never open "
                "(set businessHours.weekly or businessHours.alwaysOpen)"
            )
        # Only a request can tell "left out" from "chose the default"; a stored config has it set.
        if "default_country" not in self.validation.model_fields_set:
            found.append(
                "validation.defaultCountry not set: national numbers are read as "
                f"{self.validation.default_country} (send numbers in E.164 or set it)"
            )
        return found

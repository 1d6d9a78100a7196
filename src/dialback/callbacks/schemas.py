"""Request and response models of the public callback API (GES v3 field names)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from dialback.kit.errors import BadRequest
from dialback.kit.text import SafeStr, SafeText, check_text

_JS_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def clean_user_data(v: dict[str, Any]) -> dict[str, Any]:
    """GES userData rules: drop keys that are not JavaScript identifiers, cap string values."""
    out = {k: val for k, val in v.items() if _JS_IDENT.fullmatch(k) and len(k) <= 64}
    for k, val in out.items():
        if isinstance(val, str) and len(val) > 4096:
            raise ValueError(f"value of {k!r} is longer than 4096 characters")
    return out


ShortText = Annotated[str, Field(max_length=256), SafeText]


def _user_value(value: Any) -> Any:
    if not isinstance(value, str | int | float | bool | None):
        raise ValueError("must be a string, number, boolean or null (not an object or array)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return check_text(value)


# Checked before the union so a refused value gets one clear error, not one per member.
UserValue = Annotated[str | int | float | bool | None, BeforeValidator(_user_value)]


def to_utc(value: datetime) -> datetime:
    """Naive times are taken as UTC, as GES documents ``desiredTime``."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range (years 1-9999 in UTC)") from None


class CreateCallback(BaseModel):
    """``CreateCallbackParms``: book an immediate (no desiredTime) or scheduled callback."""

    model_config = ConfigDict(extra="ignore")

    serviceName: SafeStr = Field(min_length=1, max_length=100)
    phoneNumber: SafeStr = Field(min_length=1, max_length=32)
    desiredTime: datetime | None = None
    cbOfferType: Literal["ASAP", "SCHEDULED", "COMBINED_SCHEDULED_AND_ASAP"] | None = None
    language: str = Field(
        "en-US", min_length=2, max_length=20, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
    )
    priority: int = Field(0, ge=0, le=1_000_000)
    userData: dict[str, UserValue] = Field(default_factory=dict, max_length=100)
    alwaysCheckCapacity: bool = False
    inboundVQ: ShortText | None = None
    offerThreshold: int | None = Field(None, ge=0, le=86_400 * 30)
    channel: ShortText | None = None
    offerTiming: Literal["ON-HOURS", "OFF-HOURS"] | None = None
    cbOriginationIxnId: ShortText | None = None
    surveyRP: ShortText | None = None
    routePoint: ShortText | None = None
    captchaToken: Annotated[str, Field(max_length=4096), SafeText] | None = None
    pushChannel: ShortText | None = None
    pushTarget: Annotated[str, Field(max_length=4096), SafeText] | None = None

    @field_validator("userData")
    @classmethod
    def _user_data(cls, v: dict[str, UserValue]) -> dict[str, UserValue]:
        return clean_user_data(v)

    @field_validator("desiredTime")
    @classmethod
    def _desired(cls, v: datetime | None) -> datetime | None:
        return to_utc(v) if v is not None else None

    def extra_params(self) -> dict[str, Any]:
        """The optional GES fields kept with the callback (for reporting and routing)."""
        keys = (
            "inboundVQ",
            "offerThreshold",
            "channel",
            "offerTiming",
            "cbOriginationIxnId",
            "surveyRP",
            "routePoint",
            "pushChannel",
            "pushTarget",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class CallbackId(BaseModel):
    """Body of ``cancel`` and ``retrieve``."""

    model_config = ConfigDict(extra="ignore")

    id: SafeStr = Field(min_length=1, max_length=64)


class RescheduleIn(BaseModel):
    """Admin: move a scheduled callback to another time."""

    model_config = ConfigDict(extra="forbid")

    desiredTime: datetime

    @field_validator("desiredTime")
    @classmethod
    def _desired(cls, v: datetime) -> datetime:
        return to_utc(v)


def parse_time_param(
    name: str, iso_value: str | None, ms_value: str | None, timezone: str = "UTC"
) -> float | None:
    """Read an ISO-8601 or epoch-milliseconds query parameter; 400 naming it when malformed.

    An ISO time without an offset is a wall-clock time in ``timezone`` (an IANA name already
    checked), as GES documents for ``start`` with ``timezone``.
    """
    if iso_value:
        try:
            dt = datetime.fromisoformat(iso_value.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"{name}: not an ISO-8601 time (yyyy-MM-ddTHH:mm:ss.SSSZ)") from None
        if dt.tzinfo is None:
            # fold=0: a repeated wall-clock hour is its first occurrence.
            dt = dt.replace(tzinfo=UTC if timezone == "UTC" else ZoneInfo(timezone))
        # Same bounds as the MS form: times near year 1 or 9999 overflow the slot arithmetic.
        if not 0 <= dt.timestamp() <= 32503680000:
            raise BadRequest(f"{name}: out of range (1970 to 3000)")
        return dt.timestamp()
    if ms_value:
        try:
            value = int(ms_value)
        except ValueError:
            raise BadRequest(f"{name}MS: not an integer number of milliseconds") from None
        if not 0 <= value <= 32503680000000:
            raise BadRequest(f"{name}MS: out of range")
        return value / 1000.0
    return None

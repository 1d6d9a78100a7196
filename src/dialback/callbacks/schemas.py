"""Request and response models of the public callback API (GES v3 field names)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NoReturn
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from dialback.kit.errors import BadRequest
from dialback.kit.text import SafeStr, SafeText, check_text

_JS_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

# The bounds of userData (docs/api.md): GES types it {String: Object}.
USER_DATA_MAX_DEPTH = 5  # objects/arrays nested inside userData's own values
USER_DATA_MAX_KEYS = 100  # per object
USER_DATA_MAX_ITEMS = 100  # per array
USER_DATA_MAX_STRING = 4096  # characters per string value
USER_DATA_MAX_KEY = 256  # characters per key below the top level (top level: 64, an identifier)
USER_DATA_MAX_BYTES = 16384  # the whole userData as compact JSON (UTF-8)
# JavaScript clients (and the routing engines that read the dispatch) hold numbers as doubles:
# a larger integer would silently change; orjson and PostgreSQL's jsonb disagree beyond 64 bits.
MAX_SAFE_INTEGER = 2**53 - 1


def _refuse(path: str, problem: str) -> NoReturn:
    # Raised as a BadRequest (not a ValueError) so the message names the exact path inside
    # userData; pydantic passes it through untouched.
    raise BadRequest(f"{path}: {problem}")


def _scalar(value: Any, path: str) -> int:
    """Check one non-container value; its serialized size (an upper bound for numbers)."""
    kind = type(value)
    if kind is str:
        if len(value) > USER_DATA_MAX_STRING:
            _refuse(path, f"is longer than {USER_DATA_MAX_STRING} characters")
        try:
            check_text(value)
        except ValueError as exc:
            _refuse(path, str(exc))
        return len(value) + 2
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            _refuse(path, "integer beyond +/-(2^53-1) = 9007199254740991 (send it as a string)")
        return 17
    if kind is float:
        if not math.isfinite(value):
            _refuse(path, "must be a finite number")
        return 24
    if kind is bool or value is None:
        return 5
    _refuse(path, "must be a string, number, boolean, null, object or array")


def _nested(value: Any, path: str, depth: int) -> int:
    """Check a value below the top level; its serialized size (bounded above).

    Every value is checked, however large the estimate grows: the request body limit bounds
    the walk, and an estimate (numbers count their widest) must never leave a value unchecked.
    """
    kind = type(value)
    if kind is dict:
        if depth > USER_DATA_MAX_DEPTH:
            _refuse(path, f"nested deeper than {USER_DATA_MAX_DEPTH} levels")
        if len(value) > USER_DATA_MAX_KEYS:
            _refuse(path, f"has more than {USER_DATA_MAX_KEYS} keys")
        size = 2
        for k, v in value.items():
            if len(k) > USER_DATA_MAX_KEY:
                _refuse(path, f"key longer than {USER_DATA_MAX_KEY} characters")
            try:
                check_text(k)
            except ValueError as exc:
                _refuse(path, f"key {exc}")
            size += len(k) + 4 + _nested(v, f"{path}.{k}", depth + 1)
        return size
    if kind is list:
        if depth > USER_DATA_MAX_DEPTH:
            _refuse(path, f"nested deeper than {USER_DATA_MAX_DEPTH} levels")
        if len(value) > USER_DATA_MAX_ITEMS:
            _refuse(path, f"has more than {USER_DATA_MAX_ITEMS} items")
        size = 2
        for i, v in enumerate(value):
            size += 1 + _nested(v, f"{path}.{i}", depth + 1)
        return size
    return _scalar(value, path)


def clean_user_data(value: Any) -> dict[str, Any]:
    """GES userData: an object (or, as the Java SDK types it, a string holding one) whose keys
    that are not JavaScript identifiers are dropped; values of any JSON type within the bounds
    above. 400 naming the path of the first value that breaks them."""
    if isinstance(value, str):  # the Java SDK's ``String userData``
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            _refuse("userData", "must be an object (or a string holding a JSON object)")
    if type(value) is not dict:
        _refuse("userData", "must be an object (or a string holding a JSON object)")
    if len(value) > USER_DATA_MAX_KEYS:
        _refuse("userData", f"has more than {USER_DATA_MAX_KEYS} keys")
    out: dict[str, Any] = {}
    size = 2
    for k, v in value.items():
        if len(k) > 64 or not _JS_IDENT.fullmatch(k):
            continue
        # The common case, a flat object of strings, stays one type test per value.
        kind = type(v)
        if kind is dict or kind is list:
            size += len(k) + 4 + _nested(v, f"userData.{k}", 1)
        else:
            size += len(k) + 4 + _scalar(v, f"userData.{k}")
        out[k] = v
    if size > USER_DATA_MAX_BYTES and len(orjson.dumps(out)) > USER_DATA_MAX_BYTES:
        _refuse("userData", f"is larger than {USER_DATA_MAX_BYTES} bytes as JSON")
    return out


UserData = Annotated[dict[str, Any], BeforeValidator(clean_user_data)]
"""A request's ``userData`` (callbacks and Click-To-Call-In alike)."""

ShortText = Annotated[str, Field(max_length=256), SafeText]

OFFER_TYPES = ("ASAP", "SCHEDULED", "COMBINED_SCHEDULED_AND_ASAP")


def known_offer_type(value: Any) -> Any:
    """A known ``cbOfferType`` in upper case; any other string reads as absent (derived)."""
    if isinstance(value, str):
        known = value.strip().upper()
        return known if known in OFFER_TYPES else None
    return value


def to_utc(value: datetime) -> datetime:
    """Naive times are taken as UTC, as GES documents ``desiredTime``."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range (years 1-9999 in UTC)") from None


PushTargetText = Annotated[str, Field(min_length=1, max_length=4096), SafeText]
MAX_PUSH_TARGETS = 10


class PushTarget(BaseModel):
    """One push-notification recipient (the Java SDK's ``PushTarget``): kept, not yet used."""

    model_config = ConfigDict(extra="ignore")

    channel: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
    target: PushTargetText


class CreateCallback(BaseModel):
    """``CreateCallbackParms``: book an immediate (no desiredTime) or scheduled callback."""

    model_config = ConfigDict(extra="ignore")

    serviceName: SafeStr = Field(min_length=1, max_length=100)
    phoneNumber: SafeStr = Field(min_length=1, max_length=32)
    desiredTime: datetime | None = None
    # Reporting only, any string: the SDKs send a sentence as their default.
    cbOfferType: Annotated[str | None, BeforeValidator(known_offer_type)] = None
    language: str = Field(
        "en-US", min_length=2, max_length=20, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
    )
    priority: int = Field(0, ge=0, le=1_000_000)
    userData: UserData = Field(default_factory=dict)
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
    pushTarget: PushTargetText | None = None
    pushTargets: list[PushTarget] | None = Field(None, max_length=MAX_PUSH_TARGETS)

    @model_validator(mode="after")
    def _push_pair(self) -> CreateCallback:
        # The JS SDK's pair: one without the other names no recipient.
        if self.pushChannel is not None and self.pushTarget is None:
            raise BadRequest("pushTarget: required with pushChannel")
        if self.pushTarget is not None and self.pushChannel is None:
            raise BadRequest("pushChannel: required with pushTarget")
        return self

    def stored_offer_type(self) -> str:
        """``cbOfferType`` as stored: the known type sent, else derived from ``desiredTime``."""
        if self.cbOfferType is not None:
            return self.cbOfferType
        return "ASAP" if self.desiredTime is None else "SCHEDULED"

    def push_targets(self) -> list[dict[str, str]]:
        """Where push notifications go: the Java SDK's list and the JS SDK's pair, in one list."""
        out = [{"channel": p.channel, "target": p.target} for p in self.pushTargets or ()]
        if self.pushChannel is not None and self.pushTarget is not None:
            out.append({"channel": self.pushChannel, "target": self.pushTarget})
        return out

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
        )
        params = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if self.pushTargets is not None or self.pushChannel is not None:
            params["pushTargets"] = self.push_targets()
        return params

    def fingerprint(self) -> str:
        """A hash of what the request asks for (an Idempotency-Key's retry must match it)."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        try:
            text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an integer beyond 64 bits (refused before this, but never a 500)
            text = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(text).hexdigest()


IDEMPOTENCY_KEY_MAX = 255
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]+")


def idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header's value (None when absent); 400 unless it is 1 to 255
    printable ASCII characters."""
    if value is None:
        return None
    if not value:
        raise BadRequest("Idempotency-Key: must not be empty")
    if len(value) > IDEMPOTENCY_KEY_MAX:
        raise BadRequest(f"Idempotency-Key: at most {IDEMPOTENCY_KEY_MAX} characters")
    if _IDEMPOTENCY_KEY.fullmatch(value) is None:
        raise BadRequest("Idempotency-Key: only printable ASCII characters")
    return value


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


class RecreateIn(BaseModel):
    """Admin: recreate a callback, immediate (no desiredTime) or at ``desiredTime``."""

    model_config = ConfigDict(extra="forbid")

    desiredTime: datetime | None = None

    @field_validator("desiredTime")
    @classmethod
    def _desired(cls, v: datetime | None) -> datetime | None:
        return to_utc(v) if v is not None else None


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

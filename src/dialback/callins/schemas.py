"""Models of Click-To-Call-In: group configuration, the public request and the match lookup."""

from __future__ import annotations

from typing import Annotated, Any

import phonenumbers
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from dialback.callbacks.schemas import UserData
from dialback.kit.errors import BadRequest
from dialback.kit.phone import normalise_number
from dialback.kit.text import SafeStr, SafeText
from dialback.services.schemas import Strict, ValidationRule

PhoneText = Annotated[str, Field(min_length=1, max_length=32), SafeText]


def _region(v: str) -> str:
    v = v.upper()
    if v not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region code {v!r}")
    return v


class AccessCodeRule(Strict):
    """Whether requests get a numeric access code, and how many digits it has."""

    enabled: bool = True
    length: int = Field(default=6, ge=4, le=10)


class CallInGroupConfig(Strict):
    """A Click-To-Call-In group: the pool of numbers to dial, access codes and expiry."""

    # Declared before ``numbers`` so the numbers validator can read it.
    default_country: str = Field("US", alias="defaultCountry", min_length=2, max_length=2)
    numbers: list[PhoneText] = Field(min_length=1, max_length=100)
    access_code: AccessCodeRule = Field(
        default_factory=lambda: AccessCodeRule(), alias="accessCode"
    )
    expiry_seconds: int = Field(900, ge=60, le=86_400, alias="expirySeconds")

    @field_validator("default_country")
    @classmethod
    def _country(cls, v: str) -> str:
        return _region(v)

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if info.context and info.context.get("stored"):
            # Read back from the database: already normalised; skip re-parsing 100 numbers.
            return v
        country = info.data.get("default_country")
        if country is None:  # defaultCountry itself is invalid and already reported
            return v
        # The pool is the tenant's own numbers: premium-rate lines are allowed there.
        rule = ValidationRule.model_validate({"defaultCountry": country, "allowPremium": True})
        out: list[str] = []
        for i, raw in enumerate(v):
            try:
                e164 = normalise_number(raw, rule, field=f"number {i + 1} ({raw!r})")
            except BadRequest as exc:
                raise PydanticCustomError(
                    "phone_number", "{detail}", {"detail": exc.message}
                ) from None
            if e164 in out:
                raise PydanticCustomError(
                    "phone_number",
                    "{detail}",
                    {"detail": f"number {i + 1}: {e164} is listed twice"},
                )
            out.append(e164)
        return out

    def rule(self) -> ValidationRule:
        """How caller numbers sent for this group are parsed."""
        return ValidationRule.model_validate({"defaultCountry": self.default_country})

    def dump(self) -> dict[str, Any]:
        """JSON-ready form with camelCase keys, as stored in ``callin_groups.config``."""
        return self.model_dump(mode="json", by_alias=True)


class CreateCallIn(BaseModel):
    """Body of ``POST /call-in/requests/create`` (GES field names)."""

    model_config = ConfigDict(extra="ignore")

    groupName: SafeStr = Field(min_length=1, max_length=100)
    fromPhoneNumber: PhoneText | None = None
    userData: UserData = Field(default_factory=dict)
    callbackServiceId: Annotated[str, Field(min_length=1, max_length=100), SafeText] | None = None


class CallInOut(BaseModel):
    """``data`` of a successful create: the number to dial, the code and when both expire."""

    id: str
    toPhoneNumber: str
    groupName: str
    expirationTime: int = Field(description="Epoch seconds (UTC) after which the request expires")
    accessCode: int | None = Field(
        None,
        description="Digits to key in, as a number (codes never start with 0); null when the "
        "group has none",
    )
    fromPhoneNumber: str | None = None
    callbackServiceId: str | None = None


def _code_digits(v: Any) -> Any:
    """An access code sent as a JSON number or as a string of digits, as its digits."""
    if isinstance(v, bool):
        raise ValueError("must be a number or a string of 1 to 12 digits")
    if isinstance(v, int):
        if not 0 <= v < 10**12:
            raise ValueError("must be a number or a string of 1 to 12 digits")
        return str(v)
    if isinstance(v, str) and not (1 <= len(v) <= 12 and v.isascii() and v.isdigit()):
        raise ValueError("must be a number or a string of 1 to 12 digits")
    if v is not None and not isinstance(v, str):
        raise ValueError("must be a number or a string of 1 to 12 digits")
    return v


class MatchIn(Strict):
    """Routing engine lookup when a customer dials a call-in number."""

    to_phone_number: PhoneText = Field(alias="toPhoneNumber")
    from_phone_number: PhoneText | None = Field(None, alias="fromPhoneNumber")
    access_code: Annotated[str | None, BeforeValidator(_code_digits)] = Field(
        None,
        alias="accessCode",
        description="The digits the caller keyed in, as a number or a string of digits",
    )
    default_country: str | None = Field(
        None,
        alias="defaultCountry",
        min_length=2,
        max_length=2,
        description="Region for numbers not in international form (default US for the dialled "
        "number, the dialled number's region for the caller's)",
    )

    @field_validator("default_country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        return None if v is None else _region(v)

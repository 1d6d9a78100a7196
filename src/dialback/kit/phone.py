"""Phone numbers: E.164 normalisation against a rule (allowed countries, blocked patterns,
premium rate), and masking for logs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from dialback.kit.errors import BadRequest


class NumberRule(Protocol):
    """What a number is checked against (a service's ``validation`` settings)."""

    @property
    def default_country(self) -> str: ...
    @property
    def allowed_countries(self) -> Sequence[str] | None: ...
    @property
    def allow_premium(self) -> bool: ...
    @property
    def blocked_patterns(self) -> Sequence[str]: ...


@lru_cache(maxsize=1024)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


def mask(number: str) -> str:
    """Mask a phone number for logs: at most the first 3 and last 2 characters stay readable."""
    n = len(number)
    # Short strings keep less, so that at least half of the characters are always hidden.
    head = 3 if n >= 10 else 0
    tail = 2 if n >= 6 else 0
    return number[:head] + "*" * (n - head - tail) + number[n - tail :]


def normalise_number(raw: str, rule: NumberRule, field: str = "phoneNumber") -> str:
    """Return the E.164 form of ``raw`` or raise BadRequest naming why it is refused."""
    try:
        num = phonenumbers.parse(raw, rule.default_country)
    except NumberParseException as exc:
        raise BadRequest(f"{field}: not a phone number ({exc._msg})") from None
    if not phonenumbers.is_possible_number(num):
        raise BadRequest(f"{field}: impossible phone number")
    # is_valid_number(num) is number_type(num) != UNKNOWN (both resolve the region, then match
    # the national number against its patterns): one type lookup answers validity and premium.
    kind = phonenumbers.number_type(num)
    if kind == PhoneNumberType.UNKNOWN:
        raise BadRequest(f"{field}: not a valid phone number")
    e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    if rule.allowed_countries is not None:
        region = phonenumbers.region_code_for_number(num)
        if region not in rule.allowed_countries:
            raise BadRequest(f"{field}: numbers in {region} are not allowed for this service")
    if not rule.allow_premium and kind == PhoneNumberType.PREMIUM_RATE:
        raise BadRequest(f"{field}: premium-rate numbers are not allowed")
    for pat in _compiled(tuple(rule.blocked_patterns)):
        if pat.search(e164):
            raise BadRequest(f"{field}: this number is blocked for this service")
    return e164

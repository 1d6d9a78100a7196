"""Country and number validation: E.164, impossible numbers, countries, patterns, premium rate."""

from __future__ import annotations

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType
from pydantic import ValidationError

from dialback.kit.errors import BadRequest
from dialback.kit.phone import mask, normalise_number
from dialback.services.schemas import ValidationRule


def rule(**kw: object) -> ValidationRule:
    return ValidationRule.model_validate(kw)


def example(region: str, kind: int) -> str:
    num = phonenumbers.example_number_for_type(region, kind)
    assert num is not None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(
    ("raw", "country", "e164"),
    [
        ("+1 415 555 0123", "US", "+14155550123"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("415.555.0123", "US", "+14155550123"),
        ("1-800-FLOWERS", "US", "+18003569377"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("+44 (0)20 7946 0018", "US", "+442079460018"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("0044 20 7946 0018", "GB", "+442079460018"),
    ],
)
def test_numbers_are_normalised_to_e164_with_the_default_country(
    raw: str, country: str, e164: str
) -> None:
    assert normalise_number(raw, rule(defaultCountry=country)) == e164


def test_national_number_needs_the_right_default_country() -> None:
    # A UK national number read as a US one is impossible.
    with pytest.raises(BadRequest, match=r"^phoneNumber: impossible phone number$"):
        normalise_number("020 7946 0018", rule())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12", "impossible"),
        ("+1 415 555 01234567", "impossible"),
        ("hello", "not a phone number"),
        ("", "not a phone number"),
        ("+999 1234", "not a phone number"),
        ("+1 200 555 0123", "not a valid phone number"),  # area code 200 is not assigned
        ("+44 20 1234", "not a valid phone number"),
    ],
)
def test_bad_numbers_are_refused_naming_phone_number(raw: str, reason: str) -> None:
    with pytest.raises(BadRequest) as err:
        normalise_number(raw, rule())
    assert err.value.status == 400
    assert err.value.message.startswith("phoneNumber: ")
    assert reason in err.value.message


def test_the_field_name_is_the_callers() -> None:
    with pytest.raises(BadRequest, match=r"^fromPhoneNumber: "):
        normalise_number("12", rule(), field="fromPhoneNumber")


def test_allowed_countries() -> None:
    allowed = rule(allowedCountries=["us", "CA"])
    assert normalise_number("+1 415 555 0123", allowed) == "+14155550123"
    assert normalise_number("+1 416 555 0123", allowed) == "+14165550123"  # Toronto
    with pytest.raises(BadRequest, match=r"^phoneNumber: numbers in GB are not allowed"):
        normalise_number("+44 20 7946 0018", allowed)
    with pytest.raises(BadRequest, match=r"^phoneNumber: numbers in 001 are not allowed"):
        normalise_number("+800 1234 5678", allowed)  # international freephone has no country
    assert normalise_number("+800 1234 5678", rule()) == "+80012345678"


def test_blocked_patterns_are_regexes_on_the_e164_form() -> None:
    blocked = rule(blockedPatterns=[r"^\+1415555", "0018$"])
    with pytest.raises(BadRequest, match=r"^phoneNumber: this number is blocked"):
        normalise_number("(415) 555-0123", blocked)
    with pytest.raises(BadRequest, match=r"^phoneNumber: this number is blocked"):
        normalise_number("+44 20 7946 0018", blocked)
    assert normalise_number("+1 415 556 0123", blocked) == "+14155560123"
    assert normalise_number("+44 20 7946 0019", blocked) == "+442079460019"


def test_invalid_blocked_pattern_is_a_configuration_error() -> None:
    with pytest.raises(ValidationError, match="invalid pattern"):
        rule(blockedPatterns=["+1900"])


@pytest.mark.parametrize("region", ["US", "GB", "FR", "DE"])
def test_premium_rate_refused_unless_allowed(region: str) -> None:
    premium = example(region, PhoneNumberType.PREMIUM_RATE)
    with pytest.raises(BadRequest, match=r"^phoneNumber: premium-rate numbers are not allowed$"):
        normalise_number(premium, rule())
    assert normalise_number(premium, rule(allowPremium=True)) == premium
    mobile = example(region, PhoneNumberType.MOBILE)
    assert normalise_number(mobile, rule()) == mobile
    freephone = example(region, PhoneNumberType.TOLL_FREE)
    assert normalise_number(freephone, rule()) == freephone


def test_unknown_region_codes_are_configuration_errors() -> None:
    with pytest.raises(ValidationError):
        rule(defaultCountry="XX")
    with pytest.raises(ValidationError):
        rule(allowedCountries=["US", "ZZ"])


@pytest.mark.parametrize(
    "number",
    [
        "+14155550123",
        "+442079460018",
        "+4915123456789",
        "+80012345678",
        "+123456789",
        "0123456",
        "123456",
    ],
)
def test_mask_never_reveals_the_middle_digits(number: str) -> None:
    masked = mask(number)
    assert len(masked) == len(number)
    visible = [i for i, c in enumerate(masked) if c != "*"]
    assert all(masked[i] == number[i] for i in visible)
    # Only the first three and last two characters may show, and never more than half.
    assert all(i < 3 or i >= len(number) - 2 for i in visible)
    assert len(visible) <= len(number) // 2
    assert number not in masked
    middle = number[3:-2]
    assert middle and middle not in masked


def test_mask_of_short_strings() -> None:
    assert mask("") == ""
    assert mask("12345") == "*****"
    assert mask("+14155550123") == "+14*******23"

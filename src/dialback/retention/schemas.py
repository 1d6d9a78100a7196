"""Admin API request models of erasure."""

from __future__ import annotations

from pydantic import Field

from dialback.services.schemas import Strict


class NumberErasureIn(Strict):
    """Erase everything a tenant holds about one phone number.

    The number travels in the body, never in a URL (URLs end up in access logs).
    """

    phone_number: str = Field(min_length=1, max_length=64, alias="phoneNumber")
    default_country: str | None = Field(
        None,
        min_length=2,
        max_length=2,
        pattern="^[A-Za-z]{2}$",
        alias="defaultCountry",
        description="How to read a national number, besides the tenant's services' countries",
    )

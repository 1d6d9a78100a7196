"""The shapes of names and ids: tenants, services, call-in groups, callbacks, API keys."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
"""A tenant, service or call-in group name: a letter or digit, then letters, digits, ``_.-``."""
NAME_MAX = 100

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
"""``NAME_PATTERN`` within ``NAME_MAX``: a path that does not match names nothing that exists."""
ID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
"""A stored id (UUID text): anything else names nothing that exists."""

Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)]
"""A name in a request body."""


def is_name(value: str) -> bool:
    """Whether ``value`` could be the name of a tenant, service or group."""
    return NAME_RE.match(value) is not None


def is_id(value: str) -> bool:
    """Whether ``value`` could be a stored id."""
    return ID_RE.match(value) is not None

"""Path parameters shared by the admin routes of several domains."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from dialback.kit.names import NAME_MAX, NAME_PATTERN

TenantPath = Annotated[str, Path(min_length=1, max_length=200, description="Tenant name")]
"""A tenant name in an admin path; one the name pattern refuses reads as "no such tenant"."""

NamePath = Annotated[str, Path(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)]
"""A service or call-in group name in a path: a bad name is a 400 naming the parameter."""

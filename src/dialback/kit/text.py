"""Client-supplied text that every store can hold."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def check_text(value: Any) -> Any:
    """Refuse text no store can hold: NUL characters and unpaired UTF-16 surrogates."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL (\\u0000) characters")
        if _SURROGATE_RE.search(value):
            raise ValueError("must be valid Unicode: unpaired surrogate (\\ud800-\\udfff)")
    return value


SafeText = BeforeValidator(check_text)
"""Put this last in ``Annotated[str, <constraints>, SafeText]`` on every client-supplied string
(after the length/pattern constraints so their messages stay precise)."""

SafeStr = Annotated[str, SafeText]
"""A client-supplied string that is storable text (no NUL, no unpaired surrogate)."""

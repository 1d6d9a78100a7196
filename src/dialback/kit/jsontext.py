"""Stored JSON read for display: a value the API can render, or its raw text."""

from __future__ import annotations

import json
from typing import Any

import orjson


def _reject(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def shown(text: str | bytes | None, *, want_object: bool = False) -> tuple[Any, str | None]:
    """``(value, None)`` when ``text`` is JSON the API can render (an object when
    ``want_object``), else ``(None, raw text)``: a row an older version or a hand wrote."""
    if text is None:
        return None, None
    raw = text.decode(errors="replace") if isinstance(text, bytes) else text
    try:
        value = json.loads(raw, parse_constant=_reject)
        orjson.dumps(value)  # e.g. an integer beyond 64 bits: stored, not renderable
    except (ValueError, TypeError, RecursionError):
        return None, raw
    if want_object and not isinstance(value, dict):
        return None, raw
    return value, None

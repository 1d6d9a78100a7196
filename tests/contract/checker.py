"""How each published client parses an answer, as two checkers over ``sdk_models``.

``check(sdk, model, value)`` returns the problems a client of that SDK meets reading ``value``
(an already-decoded JSON document) as ``model``; an empty list means the answer fits.

- **Java (Gson 2.8 + the SDK's ``JSON`` adapters).** Gson throws where the JSON token does not
  fit the declared type: an object or array for a ``String``; anything but a number or a
  numeric string for ``BigDecimal``; a string that ``UUID.fromString`` or
  ``OffsetDateTime.parse(ISO_OFFSET_DATE_TIME)`` refuses; a non-array for a ``List``; a
  non-object for a model or a ``Map`` (so ``{"d": ["a"]}`` for ``HashMap<String,String>``
  throws). Gson quietly coerces a number to a ``String``, a numeric string to ``BigDecimal``
  (``"047334"`` becomes ``47334``), a string to ``Boolean`` (``parseBoolean``): reported too,
  as ``coerces`` or, when the value changes, ``alters``. Gson does not enforce
  ``required = true``; the SDK's callers rely on it (a ``null`` ``BigDecimal`` unboxed), so a
  required field that is absent or null is reported as ``missing``.
- **JavaScript (``ApiClient.convertToType``).** It never validates: ``'String'`` is
  ``String(x)`` (an array becomes its items joined by commas, an object ``"[object Object]"``),
  ``'Number'`` is ``parseFloat(x)`` (``"047334"`` → ``47334``, garbage → ``NaN``), ``'Date'``
  is ``new Date(String(x).replace(/T/i, ' '))`` (no offset: read in the browser's zone),
  ``'Boolean'`` is truthiness (``"false"`` → ``true``); ``[T]`` calls ``x.map`` and throws on a
  non-array. A conversion that changes the value is ``alters``; a changed JSON type that keeps
  the value is ``coerces``; the constructor's parameters are the required fields.

Every kind counts as a contract violation in ``test_sdk_contract.py``: the SDKs declare the
types, and a client that has to rely on a coercion is one release away from breaking.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.contract.sdk_models import ListOf, MapOf, Model, Ref, Sdk, Type

THROWS = "throws"
ALTERS = "alters"
COERCES = "coerces"
MISSING = "missing"


@dataclass(frozen=True)
class Problem:
    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"


def check(sdk: Sdk, model: str, value: Any) -> list[Problem]:
    """Every problem ``sdk``'s client has reading ``value`` as ``model``."""
    out: list[Problem] = []
    walk = _java if sdk.name == "java" else _js
    walk(sdk.models, Ref(model), value, "$", out)
    return out


# --- Java / Gson --------------------------------------------------------------------------------

_UUID = re.compile(
    r"^[0-9a-fA-F]{1,8}-[0-9a-fA-F]{1,4}-[0-9a-fA-F]{1,4}-[0-9a-fA-F]{1,4}-[0-9a-fA-F]{1,12}$"
)
_ISO_OFFSET = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|z|[+-]\d{2}:\d{2}(?::\d{2})?)$"
)
_BIG_DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_JSON_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _token(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "BOOLEAN"
    if _is_number(v):
        return "NUMBER"
    if isinstance(v, str):
        return "STRING"
    if isinstance(v, list):
        return "BEGIN_ARRAY"
    return "BEGIN_OBJECT"


def _java(models: dict[str, Model], t: Type, v: Any, path: str, out: list[Problem]) -> None:
    if v is None:
        return
    tok = _token(v)
    if isinstance(t, Ref):
        m = models[t.model]
        if m.items is not None:
            _java(models, ListOf(m.items), v, path, out)
            return
        if m.values is not None:
            _java(models, MapOf(m.values), v, path, out)
            return
        if tok != "BEGIN_OBJECT":
            out.append(Problem(path, THROWS, f"{t.model}: Expected BEGIN_OBJECT but was {tok}"))
            return
        for name, f in m.fields.items():
            sub = f"{path}.{name}"
            if v.get(name) is None:
                if f.required:
                    out.append(Problem(sub, MISSING, f"required by {t.model}"))
                continue
            _java(models, f.type, v[name], sub, out)
        return
    if isinstance(t, ListOf):
        if tok != "BEGIN_ARRAY":
            out.append(Problem(path, THROWS, f"List: Expected BEGIN_ARRAY but was {tok}"))
            return
        for i, item in enumerate(v):
            _java(models, t.item, item, f"{path}[{i}]", out)
        return
    if isinstance(t, MapOf):
        if tok != "BEGIN_OBJECT":
            out.append(Problem(path, THROWS, f"Map: Expected BEGIN_OBJECT but was {tok}"))
            return
        for k, item in v.items():
            _java(models, t.value, item, f"{path}[{k!r}]", out)
        return
    if t == "Object":
        return
    if t == "String":
        if tok in ("BEGIN_ARRAY", "BEGIN_OBJECT"):
            out.append(Problem(path, THROWS, f"String: Expected a string but was {tok}"))
        elif tok != "STRING":
            out.append(Problem(path, COERCES, f"String read from a {tok} {v!r}"))
        return
    if t == "BigDecimal":
        if tok == "NUMBER":
            if isinstance(v, float) and not math.isfinite(v):
                out.append(Problem(path, THROWS, "BigDecimal: not a finite number"))
        elif tok == "STRING":
            if not _BIG_DECIMAL.match(v):
                out.append(Problem(path, THROWS, f"BigDecimal: NumberFormatException for {v!r}"))
            elif not _JSON_NUMBER.match(v):
                out.append(Problem(path, ALTERS, f"BigDecimal({v!r}) loses the text (0-padding)"))
            else:
                out.append(Problem(path, COERCES, f"BigDecimal read from the string {v!r}"))
        else:
            out.append(Problem(path, THROWS, f"BigDecimal: Expected a number but was {tok}"))
        return
    if t == "Boolean":
        if tok == "STRING":
            kind = COERCES if v.lower() in ("true", "false") else ALTERS
            out.append(Problem(path, kind, f"Boolean.parseBoolean({v!r})"))
        elif tok != "BOOLEAN":
            out.append(Problem(path, THROWS, f"Boolean: Expected a boolean but was {tok}"))
        return
    if t == "UUID":
        if tok not in ("STRING", "NUMBER"):
            out.append(Problem(path, THROWS, f"UUID: Expected a string but was {tok}"))
        elif not (isinstance(v, str) and len(v) <= 36 and _UUID.match(v)):
            out.append(Problem(path, THROWS, f"UUID.fromString: Invalid UUID string: {v!r}"))
        return
    if t == "OffsetDateTime":
        if tok not in ("STRING", "NUMBER"):
            out.append(Problem(path, THROWS, f"OffsetDateTime: Expected a string but was {tok}"))
            return
        text = str(v)
        if text.endswith("+0000"):
            text = text[:-5] + "Z"
        if not _valid_iso_offset(text):
            out.append(Problem(path, THROWS, f"OffsetDateTime.parse: cannot parse {v!r}"))
        return
    raise AssertionError(f"unknown Java type {t!r}")


def _valid_iso_offset(text: str) -> bool:
    m = _ISO_OFFSET.match(text)
    if not m:
        return False
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    off = m.group(8)
    return off in ("Z", "z") or int(off[1:3]) <= 18


# --- JavaScript / convertToType ----------------------------------------------------------------

_JS_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(?P<off>Z|z|[+-]\d{2}:?\d{2})?$"
)


def js_string(v: Any) -> str:
    """JavaScript's ``String(v)`` for a decoded JSON value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if abs(v) < 10**21 else _js_number_text(float(v))
    if isinstance(v, float):
        return _js_number_text(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return ",".join("" if x is None else js_string(x) for x in v)
    return "[object Object]"


def _js_number_text(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    return repr(x)


def js_parse_float(text: str) -> float:
    """JavaScript's ``parseFloat``: the longest numeric prefix after leading whitespace."""
    m = re.match(r"^\s*([+-]?(Infinity|\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?))", text)
    if not m:
        return math.nan
    return float(m.group(1).replace("Infinity", "inf"))


def _js(models: dict[str, Model], t: Type, v: Any, path: str, out: list[Problem]) -> None:
    if v is None:
        return
    if isinstance(t, Ref):
        m = models[t.model]
        if m.items is not None:
            if not isinstance(v, list):
                out.append(Problem(path, ALTERS, f"{t.model}: a {_token(v)} read as an array"))
                return
            for i, item in enumerate(v):
                _js(models, m.items, item, f"{path}[{i}]", out)
            return
        if m.values is not None:
            _js(models, MapOf(m.values), v, path, out)
            return
        if not isinstance(v, dict):
            out.append(Problem(path, ALTERS, f"{t.model}.constructFromObject of a {_token(v)}"))
            return
        for name, f in m.fields.items():
            sub = f"{path}.{name}"
            if v.get(name) is None:
                if f.required:
                    out.append(Problem(sub, MISSING, f"a constructor parameter of {t.model}"))
                continue
            _js(models, f.type, v[name], sub, out)
        return
    if isinstance(t, ListOf):
        if not isinstance(v, list):
            out.append(Problem(path, THROWS, f"TypeError: data.map is not a function ({v!r})"))
            return
        for i, item in enumerate(v):
            _js(models, t.item, item, f"{path}[{i}]", out)
        return
    if isinstance(t, MapOf):
        if not isinstance(v, dict):
            out.append(Problem(path, ALTERS, f"a {_token(v)} read as a map"))
            return
        for k, item in v.items():
            _js(models, t.value, item, f"{path}[{k!r}]", out)
        return
    if t == "Object":
        return
    if t == "String":
        if isinstance(v, list | dict):
            out.append(Problem(path, ALTERS, f"String({v!r}) is {js_string(v)!r}"))
        elif not isinstance(v, str):
            out.append(Problem(path, COERCES, f"String({v!r})"))
        return
    if t == "Number":
        if _is_number(v):
            if isinstance(v, int) and abs(v) > 2**53 - 1:
                out.append(Problem(path, ALTERS, f"{v} is beyond a double's exact integers"))
            return
        got = js_parse_float(js_string(v))
        if isinstance(v, str) and not math.isnan(got) and _js_number_text(got) == v.strip():
            out.append(Problem(path, COERCES, f"parseFloat({v!r})"))
        else:
            out.append(Problem(path, ALTERS, f"parseFloat({v!r}) is {_js_number_text(got)}"))
        return
    if t == "Boolean":
        if not isinstance(v, bool):
            out.append(Problem(path, ALTERS, f"Boolean({v!r}) is truthiness, not the value"))
        return
    if t == "Date":
        text = js_string(v)
        found = _JS_DATE.match(text) if isinstance(v, str) else None
        if found is None:
            out.append(Problem(path, ALTERS, f"new Date({text!r}) is an Invalid Date"))
        elif found.group("off") is None:
            out.append(Problem(path, ALTERS, f"{text!r} has no offset: read in the local zone"))
        return
    raise AssertionError(f"unknown JS type {t!r}")

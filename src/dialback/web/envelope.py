"""The GES response envelope ``{"status": {"code", "message", "corrId"}, "data"}`` and the
models that document it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from dialback.kit.context import corr_id_var, new_corr_id

CORR_HEADER = "x-correlation-id"
CORR_SCOPE_KEY = "dialback.corr_id"

INTERNAL_ERROR_MESSAGE = "internal error; quote the corrId when reporting it"
DEPENDENCY_DOWN_MESSAGE = "a dependency of dialback is unavailable; retry later"
NOT_JSON_MESSAGE = "content-type: the request body must be JSON (Content-Type: application/json)"


def envelope(
    code: int, message: str, corr_id: str, data: Any = None, *, include_data: bool = True
) -> bytes:
    """Serialise a GES response envelope."""
    body: dict[str, Any] = {"status": {"code": code, "message": message, "corrId": corr_id}}
    if include_data:
        body["data"] = data
    return orjson.dumps(body)


class EnvelopeResponse(Response):
    """A JSON response already wrapped in the GES envelope."""

    media_type = "application/json"

    def __init__(
        self,
        data: Any = None,
        *,
        status_code: int = 200,
        message: str = "Successful",
        corr_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        corr = corr_id or corr_id_var.get() or new_corr_id()
        super().__init__(
            content=envelope(status_code, message, corr, data),
            status_code=status_code,
            headers={**(headers or {}), CORR_HEADER: corr},
        )


def ok(data: Any = None, status_code: int = 200) -> EnvelopeResponse:
    """A successful envelope."""
    return EnvelopeResponse(data, status_code=status_code)


def error_response(
    status: int,
    message: str,
    data: Any = None,
    *,
    corr_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EnvelopeResponse:
    """An error envelope."""
    return EnvelopeResponse(
        data, status_code=status, message=message, corr_id=corr_id, headers=headers
    )


class Status(BaseModel):
    """The GES status block of every response."""

    code: int
    message: str
    corrId: str


class ErrorEnvelope(BaseModel):
    """An error answer: status names the problem, data may hold proposed slots."""

    status: Status
    data: Any = None


class IdData(BaseModel):
    id: str


class IdEnvelope(BaseModel):
    status: Status
    data: IdData


class AnyEnvelope(BaseModel):
    status: Status
    data: Any = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 404, 409, 413, 415, 429)
}
"""The error answers every route documents."""

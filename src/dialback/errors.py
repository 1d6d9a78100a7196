"""Errors a request can end in; each becomes a 4xx GES envelope naming the problem."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered to the client with ``status`` and ``message`` in the envelope."""

    def __init__(self, status: int, message: str, *, data: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data


class BadRequest(ApiError):
    """400: the request is malformed or breaks a rule."""

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(400, message, data=data)


class Unauthorized(ApiError):
    """401: missing or wrong credentials."""

    def __init__(self, message: str = "missing or invalid x-api-key header") -> None:
        super().__init__(401, message)


class NotFound(ApiError):
    """404: no such resource for this tenant."""

    def __init__(self, message: str) -> None:
        super().__init__(404, message)


class Conflict(ApiError):
    """409: the resource exists or is in a state that forbids the change."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


class TooManyRequests(ApiError):
    """429: a capacity or throttling limit was reached."""

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(429, message, data=data)

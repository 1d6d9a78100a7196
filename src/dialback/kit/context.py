"""Context carried through a request or a monitor step: the corrId and the bound log fields."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

corr_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("corr_id", default="")

# Context bound for the current request or monitor step: tenant, callbackId, ...
log_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({})
)


@contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Bind fields (tenant, callbackId, ...) to every log line inside the block."""
    token = log_context.set({**log_context.get(), **fields})
    try:
        yield
    finally:
        log_context.reset(token)


def bind(**fields: str) -> None:
    """Bind fields for the rest of the current task (a request's tenant, for instance)."""
    log_context.set({**log_context.get(), **fields})

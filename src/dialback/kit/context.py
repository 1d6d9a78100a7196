"""Context carried through a request or a monitor step: the corrId, the bound log fields and
what a use case adds to its request's audit entry."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

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


# The audit middleware binds a fresh dict per audited request; a use case adds to it in place
# (so that a task running on a copy of the context still adds to the same entry).
audit_note_var: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "audit_note", default=None
)


def note_for_audit(**detail: Any) -> None:
    """Add ``detail`` to the current request's audit entry (nothing outside an audited request)."""
    note = audit_note_var.get()
    if note is not None:
        note.update(detail)

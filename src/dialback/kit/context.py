"""Context carried through a request or a monitor step: the corrId, the bound log fields and
what a use case adds to its request's audit entry."""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

corr_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("corr_id", default="")

# A corrId as the HTTP edge admits one in x-correlation-id (and a routing engine's outcome may
# carry): 1-128 of these characters. The stores keep its first CORR_ID_STORED characters, and a
# lookup cuts what it is given the same way, so the full id finds what was stored.
CORR_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CORR_ID_STORED = 64

# Context bound for the current request or monitor step: tenant, callbackId, ...
log_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({})
)


def new_corr_id() -> str:
    """A fresh correlation id: a UUID in its dashed form, which the Java SDK's ``corrId``
    (``java.util.UUID``) requires."""
    return str(uuid.uuid4())


def stored_corr_id(corr: str | None) -> str | None:
    """``corr`` as the stores keep it (its first ``CORR_ID_STORED`` characters); None when empty."""
    return corr[:CORR_ID_STORED] if corr else None


def current_corr_id() -> str | None:
    """The current request's or monitor step's corrId as the stores keep it (None: none set)."""
    return stored_corr_id(corr_id_var.get())


@contextmanager
def corr_scope(corr: str) -> Iterator[str]:
    """Make ``corr`` the corrId of the block (a monitor step): its log lines and its writes."""
    token = corr_id_var.set(corr)
    try:
        yield corr
    finally:
        corr_id_var.reset(token)


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

"""Route dialback's logging to a file descriptor for one test, then put the old setup back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dialback.observability.logging import StdoutHandler, setup_logging


@contextmanager
def logging_to(fd: int, level: str = "info", **options: Any) -> Iterator[StdoutHandler]:
    """``setup_logging(level, fd=fd, **options)`` inside the block; the root logger's handlers
    and level as they were after it. The caller owns (and closes) ``fd``."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        yield setup_logging(level, fd=fd, **options)
    finally:
        for h in list(root.handlers):
            h.flush()
            root.removeHandler(h)
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)

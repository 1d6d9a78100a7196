"""A per-process cache of values loaded from the database, with a time to live per value.

Built for the hot path's lookups (API key -> tenant, tenant + name -> service): when a value
expires under load, one reload runs and every request meanwhile is answered from the expired
value, instead of every concurrent request querying the database at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger("dialback.cache")


class TtlCache(Generic[K, V]):
    """``load(key)`` on a miss, kept ``ttl(value)`` seconds; at most one load per key at a time.

    An expired value is still served while its reload runs, for at most ``ttl(value)`` more
    seconds (past that, or when the reload fails, requests wait for a load of their own and
    see its error). ``invalidate`` and ``clear`` apply at once, also to loads under way.
    """

    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        ttl: Callable[[V], float],
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._clock = clock
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[K, tuple[float, float, V]] = {}  # expires, stale until, value
        self._loading: dict[K, asyncio.Task[V]] = {}
        self._generation = 0

    async def get(self, key: K) -> V:
        """The value for ``key``, loading it when missing or expired."""
        hit = self._entries.get(key)
        if hit is not None:
            expires, stale_until, value = hit
            now = self._clock()
            if now < expires:
                return value
            if now < stale_until:
                if key not in self._loading:
                    self._start(key)
                return value
        task = self._loading.get(key)
        if task is None:
            task = self._start(key)
        # Shielded: a request that goes away does not cancel the load the others wait for.
        return await asyncio.shield(task)

    def invalidate(self, key: K) -> None:
        """Forget ``key``: the next ``get`` loads it afresh."""
        self._generation += 1
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        """Forget every value."""
        self._generation += 1
        self._entries.clear()
        self._loading.clear()

    def _start(self, key: K) -> asyncio.Task[V]:
        task = asyncio.get_running_loop().create_task(self._fill(key, self._generation))
        self._loading[key] = task
        task.add_done_callback(_retrieve_exception)
        return task

    async def _fill(self, key: K, generation: int) -> V:
        try:
            value = await self._load(key)
        except BaseException:
            if self._generation == generation:
                self._loading.pop(key, None)
                # A failed reload ends the stale period: the next request waits and sees why.
                self._entries.pop(key, None)
            raise
        if self._generation == generation:
            self._loading.pop(key, None)
            if key not in self._entries and len(self._entries) >= self._max_entries:
                self._entries.clear()
            ttl = self._ttl(value)
            now = self._clock()
            self._entries[key] = (now + ttl, now + 2 * ttl, value)
        return value


def _retrieve_exception(task: asyncio.Task[object]) -> None:
    # A background reload nobody awaited must not end as "exception was never retrieved".
    if not task.cancelled() and task.exception() is not None:
        log.debug("cache reload failed: %r", task.exception())

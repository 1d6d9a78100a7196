"""Per-virtual-queue statistics of a tenant, computed at most once per ``max-age`` and kept
five minutes, as GES's statistics proxy caches Genesys statistics.

The cache is per process: each replica answers from its own snapshots.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from dialback.callbacks import repository as repo
from dialback.callbacks.lifecycle import OPEN_STATES
from dialback.callbacks.service import CallbackService, WaitEstimate
from dialback.routing.messages import COMPLETION_REASONS
from dialback.routing.transport import RoutingTransport
from dialback.services import repository as services_repo
from dialback.services.repository import ServiceCache
from dialback.tenants.repository import Tenant

RETENTION_SECONDS = 300  # GES keeps statistics 5 minutes
MIN_MAX_AGE = 15  # and refreshes them at most every 15 seconds
MAX_QUEUES = 50
MAX_SNAPSHOTS = 1000

SnapshotKey = tuple[str, tuple[str, ...] | None, int]


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    """One virtual queue: callbacks per open state, completions by reason, the mode2 EWT.
    ``counts`` is None for a queue that does not exist."""

    name: str
    counts: dict[str, int] | None
    completed: dict[str, int]
    wait: WaitEstimate | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The statistics of some of a tenant's queues as of ``computed_at`` (epoch seconds)."""

    queues: list[QueueStatistics]
    window_seconds: int
    active_consumers: int
    truncated: bool
    computed_at: float


class StatisticsService:
    """Statistics of a tenant's virtual queues (its callback services), cached per process."""

    def __init__(
        self,
        engine: AsyncEngine,
        service_cache: ServiceCache,
        transport: RoutingTransport,
        callbacks: CallbackService,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.service_cache = service_cache
        self.transport = transport
        self.callbacks = callbacks
        self.clock = clock
        self._snapshots: dict[SnapshotKey, Snapshot] = {}
        self._loading: dict[SnapshotKey, asyncio.Task[Snapshot]] = {}

    async def statistics(
        self, tenant: Tenant, names: list[str] | None, *, window_seconds: int, max_age: int
    ) -> Snapshot:
        """The queues' statistics, at most ``max_age`` seconds old (15 to 300)."""
        max_age = min(max(max_age, MIN_MAX_AGE), RETENTION_SECONDS)
        key: SnapshotKey = (tenant.id, tuple(names) if names is not None else None, window_seconds)
        hit = self._snapshots.get(key)
        if hit is not None and self.clock() - hit.computed_at <= max_age:
            return hit
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh(key, tenant))
            self._loading[key] = task
            task.add_done_callback(lambda _t: self._loading.pop(key, None))
        # Shielded: a client that goes away does not cancel the query the others wait for.
        return await asyncio.shield(task)

    async def _refresh(self, key: SnapshotKey, tenant: Tenant) -> Snapshot:
        snapshot = await self._compute(tenant, list(key[1]) if key[1] is not None else None, key[2])
        now = self.clock()
        for k in [k for k, s in self._snapshots.items() if now - s.computed_at > RETENTION_SECONDS]:
            del self._snapshots[k]
        if len(self._snapshots) >= MAX_SNAPSHOTS:
            self._snapshots.clear()
        self._snapshots[key] = snapshot
        return snapshot

    async def _compute(self, tenant: Tenant, names: list[str] | None, window: int) -> Snapshot:
        now = self.clock()
        truncated = False
        async with self.engine.connect() as conn:
            if names is None:
                names = [s.name for s in await services_repo.list_services(conn, tenant.id)]
                truncated = len(names) > MAX_QUEUES
                names = names[:MAX_QUEUES]
            found = {n: await self.service_cache.get(tenant.id, n) for n in names}
            ids = [svc.id for svc in found.values() if svc is not None]
            open_counts = await repo.open_counts(conn, ids) if ids else {}
            done = await repo.completed_counts(conn, ids, now - window) if ids else {}
            waits = {
                svc.id: await self.callbacks.wait_estimate(conn, svc, "mode2")
                for svc in found.values()
                if svc is not None
            }
        queues = []
        for name, svc in found.items():
            if svc is None:
                queues.append(QueueStatistics(name, None, {}, None))
                continue
            counts = {s: open_counts.get((svc.id, s), 0) for s in OPEN_STATES}
            completed = {r: done.get((svc.id, r), 0) for r in COMPLETION_REASONS}
            for (sid, reason), n in done.items():
                if sid == svc.id and reason not in completed:
                    completed[reason or "unknown"] = completed.get(reason or "unknown", 0) + n
            queues.append(QueueStatistics(name, counts, completed, waits[svc.id]))
        consumers = await self.transport.active_consumers()
        return Snapshot(queues, window, consumers, truncated, now)

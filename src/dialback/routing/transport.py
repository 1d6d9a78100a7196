"""The routing transport: due callbacks out on a stream, outcome events back on another.

``RedisTransport`` is the real one (GES's ORS Redis stream). ``MemoryTransport`` serves the
embedded single-process mode, with the same exactly-once-per-attempt publishing contract.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dialback.routing.messages import Dispatch, Outcome

# One call publishes a batch. For each callback the SET NX on its (callback, attempt) key and
# its XADD happen atomically (the whole script is): a claim retried after a crash re-publishes
# nothing. KEYS = the stream, then one dedup key per callback; ARGV[1] = the keys' TTL,
# ARGV[2] = JSON [[field names], [values of callback 1], [values of callback 2], ...]. One JSON
# argument instead of a bulk string per field makes packing the call ~7x cheaper for the client
# at the same cost for Redis. Returns 1 (published now) or 0 (already was) per callback.
_PUBLISH_BATCH = """
local ttl = ARGV[1]
local data = cjson.decode(ARGV[2])
local names = data[1]
local k = #names
local entry = {}
local out = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ttl) then
    local values = data[i]
    for j = 1, k do
      entry[2 * j - 1] = names[j]
      entry[2 * j] = values[j]
    end
    redis.call('XADD', KEYS[1], '*', unpack(entry))
    out[i - 1] = 1
  else
    out[i - 1] = 0
  end
end
return out
"""
# Callbacks per script call: bounds how long one call holds Redis (each is a SET and an XADD).
_PUBLISH_CHUNK = 1000


class GroupMissing(ResponseError):
    """The stream or its consumer group does not exist (Redis ``NOGROUP``): a routing Redis
    that restarted empty; provisioning again repairs it."""


def _typed(exc: ResponseError) -> ResponseError:
    return GroupMissing(*exc.args) if str(exc).startswith("NOGROUP") else exc


def dedup_key(d: Dispatch) -> str:
    """The once-only key of a dispatch: one per (callback, attempt), and one per republish."""
    base = f"dialback:published:{d.id}:{d.attempt}"
    return f"{base}:r{d.republish}" if d.republish else base


# Errors of a pooled connection that died with the server (a restart): worth one retry.
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


class RoutingTransport(ABC):
    """What the monitor and the routing engine exchange."""

    @abstractmethod
    async def publish(self, dispatches: list[Dispatch]) -> list[bool]:
        """Publish each attempt once; True where newly published, False where already was."""

    @abstractmethod
    async def publish_cancel(self, callback_id: str, attempt: int) -> None:
        """Tell the routing engine to drop a queued callback."""

    @abstractmethod
    async def read_outcomes(
        self, consumer: str, count: int, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Outcome entries for this consumer (new ones, and stale ones of dead consumers);
        ``GroupMissing`` when the consumer group is gone."""

    @abstractmethod
    async def ack_outcomes(self, entry_ids: list[str]) -> None:
        """Acknowledge processed outcome entries."""

    @abstractmethod
    async def read_dispatches(
        self, consumer: str, count: int, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Routing-engine side: dispatch entries for this consumer."""

    @abstractmethod
    async def ack_dispatches(self, entry_ids: list[str]) -> None:
        """Routing-engine side: acknowledge handled dispatch entries."""

    @abstractmethod
    async def emit_outcome(self, outcome: Outcome) -> None:
        """Routing-engine side: report an outcome."""

    @abstractmethod
    async def active_consumers(self, idle_ms: int = 30_000) -> int:
        """Routing-engine consumers that read the stream or sent a heartbeat within ``idle_ms``."""

    @abstractmethod
    async def heartbeat(self, consumer: str) -> None:
        """Routing-engine side: announce that ``consumer`` is alive (docs/routing.md)."""

    @abstractmethod
    async def ensure_groups(self, provisioner: bool = True) -> bool:
        """Create the streams and consumer groups when missing; True when they had been
        provisioned before and were gone (the routing Redis restarted empty or was flushed).
        A routing engine passes ``provisioner=False``: it repairs its group, and leaves the
        telling of a loss to dialback."""

    # Times ``ensure_groups`` found provisioned streams or groups gone (read by the monitor).
    losses_detected: int = 0

    async def uptime_seconds(self) -> float | None:
        """How long the transport's server has been up (None: not known)."""
        return None

    async def intact(self) -> bool:
        """Whether the streams, consumer groups and marker ``ensure_groups`` provisions are
        all there (a cheap read; False calls for ``ensure_groups``)."""
        return True

    @abstractmethod
    async def ping(self) -> None:
        """Raise when the transport is unreachable."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections."""

    async def trim_streams(self, margin_entries: int, margin_ms: int, limit: int) -> int:
        """Delete at most ``limit`` of the oldest stream entries every consumer group has been
        delivered and acknowledged, keeping ``margin_entries`` and ``margin_ms`` of them; how
        many were deleted (docs/security.md)."""
        return 0

    async def remove_dead_consumers(self, idle_ms: int, keep: list[str], limit: int) -> int:
        """Remove up to ``limit`` outcome-group consumers idle for ``idle_ms`` with nothing
        pending (dead replicas), never one in ``keep``; how many were removed."""
        return 0

    async def scrub_dispatches(self, callback_ids: list[str]) -> int:
        """Delete every dispatch-stream entry of these (erased) callbacks, whoever has read
        it; how many were deleted."""
        return 0


class RedisTransport(RoutingTransport):
    """Redis streams with consumer groups."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        dispatch_stream: str,
        outcome_stream: str,
        outcome_group: str,
        routing_group: str,
        dedup_ttl: int,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self.client = client
        self.dispatch_stream = dispatch_stream
        self.outcome_stream = outcome_stream
        self.outcome_group = outcome_group
        self.routing_group = routing_group
        self.dedup_ttl = dedup_ttl
        self.claim_idle_ms = claim_idle_ms
        self._script = client.register_script(_PUBLISH_BATCH)
        self._last_autoclaim = 0.0
        self._provisioned = False
        self._provision_lock = asyncio.Lock()
        self.losses_detected = 0

    async def publish(self, dispatches: list[Dispatch]) -> list[bool]:
        out: list[bool] = []
        i, n = 0, len(dispatches)
        while i < n:
            # A run of up to _PUBLISH_CHUNK dispatches with the same field names, in order.
            names = list(dispatches[i].fields)
            keys = [self.dispatch_stream]
            data: list[list[str]] = [names]
            j = i
            while j < n and j - i < _PUBLISH_CHUNK:
                d = dispatches[j]
                if list(d.fields) != names:
                    break
                keys.append(dedup_key(d))
                data.append(list(d.fields.values()))
                j += 1
            res = await self._script(keys=keys, args=[self.dedup_ttl, orjson.dumps(data)])
            out.extend(r == 1 for r in res)
            i = j
        return out

    async def publish_cancel(self, callback_id: str, attempt: int) -> None:
        await self.client.xadd(
            self.dispatch_stream, {"type": "cancel", "id": callback_id, "attempt": str(attempt)}
        )

    async def _group(self, stream: str, group: str) -> bool:
        """Create ``group`` on ``stream``; True when it was missing."""
        try:
            await self.client.xgroup_create(stream, group, id="0", mkstream=True)
            return True
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False

    @property
    def provisioned_key(self) -> str:
        """A marker dialback keeps on the routing Redis: gone means the data was lost, even
        when a routing engine re-created its group before dialback looked."""
        return f"{self.dispatch_stream}:provisioned"

    async def intact(self) -> bool:
        if not await self.client.exists(self.provisioned_key):
            return False
        for stream, group in (
            (self.dispatch_stream, self.routing_group),
            (self.outcome_stream, self.outcome_group),
        ):
            try:
                groups = await self.client.xinfo_groups(stream)
            except ResponseError:
                return False  # no such stream
            if group not in {_s(g["name"]) for g in groups}:
                return False
        return True

    async def ensure_groups(self, provisioner: bool = True) -> bool:
        # One call at a time: the monitor's outcome loop and its deadline sweep both provision
        # at start, and interleaved, one would read the other's fresh groups as a loss.
        async with self._provision_lock:
            was_provisioned = self._provisioned
            created = await self._group(self.outcome_stream, self.outcome_group)
            created = await self._group(self.dispatch_stream, self.routing_group) or created
            if not provisioner:
                return False
            marked = bool(
                await self.client.set(self.provisioned_key, f"{time.time():.3f}", nx=True)
            )
            lost = was_provisioned and (created or marked)
            self._provisioned = True
            if lost:
                self.losses_detected += 1
            return lost

    async def read_outcomes(
        self, consumer: str, count: int, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        try:
            return await self._read_outcomes(consumer, count, block_ms)
        except ResponseError as exc:
            raise _typed(exc) from exc

    async def _read_outcomes(
        self, consumer: str, count: int, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        now = time.monotonic()
        if now - self._last_autoclaim > self.claim_idle_ms / 2000:
            self._last_autoclaim = now
            res = await self.client.xautoclaim(
                self.outcome_stream,
                self.outcome_group,
                consumer,
                self.claim_idle_ms,
                "0-0",
                count=count,
            )
            claimed = [(_s(i), _fields(f)) for i, f in res[1] if f]
            if claimed:
                return claimed
        resp: Any = await self.client.xreadgroup(
            self.outcome_group, consumer, {self.outcome_stream: ">"}, count=count, block=block_ms
        )
        return [(_s(i), _fields(f)) for _stream, entries in resp or [] for i, f in entries]

    async def ack_outcomes(self, entry_ids: list[str]) -> None:
        if entry_ids:
            try:
                await self.client.xack(self.outcome_stream, self.outcome_group, *entry_ids)
            except ResponseError as exc:
                raise _typed(exc) from exc

    async def read_dispatches(
        self, consumer: str, count: int, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        try:
            resp: Any = await self.client.xreadgroup(
                self.routing_group,
                consumer,
                {self.dispatch_stream: ">"},
                count=count,
                block=block_ms,
            )
        except ResponseError as exc:
            raise _typed(exc) from exc
        return [(_s(i), _fields(f)) for _stream, entries in resp or [] for i, f in entries]

    async def ack_dispatches(self, entry_ids: list[str]) -> None:
        if entry_ids:
            await self.client.xack(self.dispatch_stream, self.routing_group, *entry_ids)

    async def emit_outcome(self, outcome: Outcome) -> None:
        fields: dict[Any, Any] = outcome.to_fields()
        await self.client.xadd(self.outcome_stream, fields)

    @property
    def heartbeat_key(self) -> str:
        """Hash of routing-engine consumer -> last heartbeat (epoch seconds)."""
        return f"{self.dispatch_stream}:heartbeats"

    async def active_consumers(self, idle_ms: int = 30_000) -> int:
        try:
            return await self._active_consumers(idle_ms)
        except _CONNECTION_ERRORS:
            # A pooled connection that died with a restarted server is not "no consumer":
            # drop the idle connections and ask once more on a fresh one (a second failure
            # is raised: the server is really unreachable).
            await self.client.connection_pool.disconnect(inuse_connections=False)
            return await self._active_consumers(idle_ms)

    async def uptime_seconds(self) -> float | None:
        info = await self.client.info("server")
        return float(info["uptime_in_seconds"])

    async def _active_consumers(self, idle_ms: int) -> int:
        # Redis lists a group consumer only once it has been delivered something, so an idle
        # but healthy engine is recognised by its heartbeat as well.
        try:
            consumers = await self.client.xinfo_consumers(self.dispatch_stream, self.routing_group)
        except ResponseError:
            consumers = []
        active = {c["name"] for c in consumers if int(c.get("idle", idle_ms + 1)) <= idle_ms}
        cutoff = time.time() - idle_ms / 1000
        beats = await self.client.hgetall(self.heartbeat_key)
        for name, at in beats.items():
            try:
                if float(at) >= cutoff:
                    active.add(name)
            except ValueError:
                continue
        return len(active)

    async def heartbeat(self, consumer: str) -> None:
        await self.client.hset(self.heartbeat_key, consumer, f"{time.time():.3f}")

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()

    async def trim_streams(self, margin_entries: int, margin_ms: int, limit: int) -> int:
        removed = 0
        for stream in (self.dispatch_stream, self.outcome_stream):
            script = self.client.register_script(_TRIM_ACKNOWLEDGED)
            removed += int(await script(keys=[stream], args=[margin_entries, margin_ms, limit]))
        return removed

    async def remove_dead_consumers(self, idle_ms: int, keep: list[str], limit: int) -> int:
        script = self.client.register_script(_REMOVE_DEAD_CONSUMERS)
        args: list[str | int] = [self.outcome_group, idle_ms, limit, *keep]
        return int(await script(keys=[self.outcome_stream], args=args))

    async def scrub_dispatches(self, callback_ids: list[str]) -> int:
        # The entries hold the number and userData. A deleted entry a consumer has pending is
        # still acknowledged normally, and claiming it yields its id without fields (Redis 7).
        wanted = set(callback_ids)
        if not wanted:
            return 0
        found: list[str] = []
        start = "-"
        while True:
            raw: Any = await self.client.xrange(self.dispatch_stream, min=start, count=_SCRUB_CHUNK)
            chunk = [(_s(i), _fields(f)) for i, f in raw or [] if f]
            for eid, fields in chunk:
                if fields.get("id") in wanted and fields.get("type") != "cancel":
                    found.append(eid)
            if len(raw or []) < _SCRUB_CHUNK:
                break
            start = "(" + _s(raw[-1][0])
        deleted = 0
        for i in range(0, len(found), _SCRUB_CHUNK):
            deleted += int(
                await self.client.xdel(self.dispatch_stream, *found[i : i + _SCRUB_CHUNK])
            )
        return deleted


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _fields(raw: dict) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}


class MemoryTransport(RoutingTransport):
    """In-process queues for the embedded mode; dedup is per process lifetime."""

    def __init__(self, dedup_limit: int = 1_000_000) -> None:
        self._dispatches: asyncio.Queue[tuple[str, dict[str, str]]] = asyncio.Queue()
        self._outcomes: asyncio.Queue[tuple[str, dict[str, str]]] = asyncio.Queue()
        self._published: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        self._dedup_limit = dedup_limit
        self._seq = 0
        self._readers: dict[str, float] = {}

    def _next_id(self) -> str:
        self._seq += 1
        return f"{int(time.time() * 1000)}-{self._seq}"

    async def publish(self, dispatches: list[Dispatch]) -> list[bool]:
        out = []
        for d in dispatches:
            key = (d.id, d.attempt, d.republish)
            if key in self._published:
                out.append(False)
                continue
            self._published[key] = None
            if len(self._published) > self._dedup_limit:
                self._published.popitem(last=False)
            self._dispatches.put_nowait((self._next_id(), dict(d.fields)))
            out.append(True)
        return out

    async def publish_cancel(self, callback_id: str, attempt: int) -> None:
        self._dispatches.put_nowait(
            (self._next_id(), {"type": "cancel", "id": callback_id, "attempt": str(attempt)})
        )

    @staticmethod
    async def _drain(q: asyncio.Queue, count: int, block_ms: int) -> list:
        items = []
        try:
            items.append(await asyncio.wait_for(q.get(), block_ms / 1000))
        except TimeoutError:
            return items
        while len(items) < count and not q.empty():
            items.append(q.get_nowait())
        return items

    async def read_outcomes(
        self, consumer: str, count: int, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        return await self._drain(self._outcomes, count, block_ms)

    async def ack_outcomes(self, entry_ids: list[str]) -> None:
        return None

    async def read_dispatches(
        self, consumer: str, count: int, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        self._readers[consumer] = time.monotonic()
        try:
            return await self._drain(self._dispatches, count, block_ms)
        finally:
            self._readers[consumer] = time.monotonic()

    async def ack_dispatches(self, entry_ids: list[str]) -> None:
        return None

    async def emit_outcome(self, outcome: Outcome) -> None:
        self._outcomes.put_nowait((self._next_id(), outcome.to_fields()))

    async def active_consumers(self, idle_ms: int = 30_000) -> int:
        cutoff = time.monotonic() - idle_ms / 1000
        return sum(1 for t in self._readers.values() if t >= cutoff)

    async def heartbeat(self, consumer: str) -> None:
        self._readers[consumer] = time.monotonic()

    async def ensure_groups(self, provisioner: bool = True) -> bool:
        return False

    async def ping(self) -> None:
        return None

    async def trim_streams(self, margin_entries: int, margin_ms: int, limit: int) -> int:
        # Entries leave the in-process queues when they are read: nothing piles up.
        return 0

    async def remove_dead_consumers(self, idle_ms: int, keep: list[str], limit: int) -> int:
        return 0


# Trims one stream, atomically (nothing can be delivered or claimed between the look and the
# trim): only entries below every group's oldest pending id and up to its last-delivered id
# go, so only what every group was delivered and acknowledged; the ``margin`` newest of those
# stay, and so does anything younger than ``margin_ms`` (Redis's own clock); at most ``limit``
# entries go per call. A stream without groups is never trimmed (no one was delivered
# anything). KEYS = the stream; ARGV = margin, margin_ms, limit. Returns the count deleted.
_TRIM_ACKNOWLEDGED = """
local stream = KEYS[1]
local margin = tonumber(ARGV[1])
local margin_ms = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
if redis.call('EXISTS', stream) == 0 then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local groups = redis.call('XINFO', 'GROUPS', stream)
if #groups == 0 then return 0 end
local floor = nil
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  -- An exclusive bound: everything up to the last delivered id was delivered...
  local lm, ls = parse(info['last-delivered-id'])
  local candidate = string.format('%.0f-%.0f', lm, ls + 1)
  if tonumber(info['pending']) > 0 then
    -- ...and acknowledged, below the oldest pending one.
    local p = redis.call('XPENDING', stream, info['name'])
    if p[2] and less(p[2], candidate) then candidate = p[2] end
  end
  if floor == nil or less(candidate, floor) then floor = candidate end
end
if floor == '0-1' then return 0 end
local older = redis.call('XREVRANGE', stream, '(' .. floor, '-', 'COUNT', margin + 1)
if #older <= margin then return 0 end
-- This entry (the newest one the margin does not keep) and everything older may go.
local last = older[margin + 1][1]
local t = redis.call('TIME')
local cut_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - margin_ms
if cut_ms <= 0 then return 0 end
local last_ms = parse(last)
if last_ms >= cut_ms then
  local young = redis.call('XREVRANGE', stream, string.format('%.0f', cut_ms - 1), '-', 'COUNT', 1)
  if #young == 0 then return 0 end
  last = young[1][1]
end
local first = redis.call('XRANGE', stream, '-', last, 'COUNT', limit)
if #first == 0 then return 0 end
-- MINID keeps what is not below its id: the successor of the last entry to delete.
local upto_ms, upto_seq = parse(first[#first][1])
return redis.call('XTRIM', stream, 'MINID', string.format('%.0f-%.0f', upto_ms, upto_seq + 1))
"""

# Removes dead consumers of one group, atomically: a consumer idle for ARGV[2] ms with no
# pending entries, not named in ARGV[4..]; at most ARGV[3] of them. KEYS = the stream,
# ARGV[1] = the group. A consumer with pending entries is never removed (its entries would
# leave the group's pending list, and no one could claim them again).
_REMOVE_DEAD_CONSUMERS = """
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) ~= 'table' or consumers['err'] then return 0 end
local idle = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local keep = {}
for i = 4, #ARGV do keep[ARGV[i]] = true end
local removed = 0
for _, c in ipairs(consumers) do
  if removed >= limit then break end
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if tonumber(info['pending']) == 0 and tonumber(info['idle']) >= idle and not keep[info['name']] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
"""

# Entries read (or deleted) per call when an erasure scrubs the dispatch stream.
_SCRUB_CHUNK = 1000

"""The in-process backend: a byte budget with least-recently-used eviction, TTLs honoured.

It is the embedded default when no Redis is configured, and the fallback while Redis is down.
Every method runs without awaiting (except the incremental pattern scan), so each operation is
atomic on the event loop. Expired entries are dropped when read and, in order of expiry, whenever
something is written; their heap is rebuilt when overwritten entries leave it mostly dead.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.cache.backend import BackendKind, Usage, Write
from services.cache.globs import to_regex

__all__ = ["MemoryBackend", "Stored"]

# Bytes an entry costs beyond its key and blob (dict slots, the item object, the heap tuple).
ENTRY_OVERHEAD = 160
_SCAN_CHUNK = 2000


@dataclass(slots=True)
class _Item:
    blob: bytes
    expires_at_ms: int
    raw: int
    stored: int
    cost: int
    source: str | None


@dataclass(frozen=True, slots=True)
class Stored:
    """An entry as the memory backend holds it (for writing it back to Redis)."""

    blob: bytes
    ttl_ms: int
    raw_size: int
    stored_size: int
    source: str | None


Key = tuple[str, str]


class MemoryBackend:
    """Entries in a dict in LRU order, within ``budget_bytes``."""

    def __init__(self, budget_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.budget_bytes = budget_bytes
        self._clock = clock
        self._items: OrderedDict[Key, _Item] = OrderedDict()
        self._keys: dict[str, set[str]] = {}
        self._usage: dict[str, list[int]] = {}  # namespace -> [entries, raw, stored]
        self._sources: dict[Key, set[str]] = {}  # (namespace, path) -> keys
        self._heap: list[tuple[int, int, str, str, _Item]] = []
        self._seq = itertools.count()
        self._evictions: Counter[str] = Counter()
        self._leases: dict[Key, tuple[str, int]] = {}
        self.used_bytes = 0

    @property
    def kind(self) -> BackendKind:
        """Always MEMORY."""
        return BackendKind.MEMORY

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- reads -----------------------------------------------------------------------------

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The blob under key, or None (an expired entry is dropped)."""
        return self._get((namespace, key), self._now_ms())

    def _get(self, k: Key, now: int) -> bytes | None:
        item = self._items.get(k)
        if item is None:
            return None
        if item.expires_at_ms <= now:
            self._remove(k, item)
            return None
        self._items.move_to_end(k)
        return item.blob

    async def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        """The blobs under keys, in order."""
        now = self._now_ms()
        return [self._get((namespace, key), now) for key in keys]

    def peek(self, namespace: str, key: str) -> Stored | None:
        """The live entry under key without touching its recency, or None."""
        item = self._items.get((namespace, key))
        now = self._now_ms()
        if item is None or item.expires_at_ms <= now:
            return None
        return Stored(item.blob, item.expires_at_ms - now, item.raw, item.stored, item.source)

    # -- writes ----------------------------------------------------------------------------

    async def set_many(self, namespace: str, writes: Sequence[Write]) -> list[bool]:
        """Store the writes; evict least recently used entries beyond the budget."""
        now = self._now_ms()
        self._expire(now)
        stored = []
        for write in writes:
            k = (namespace, write.key)
            if write.only_if_absent and self._get(k, now) is not None:
                stored.append(False)
                continue
            self._put(k, write, now)
            stored.append(True)
        self._evict()
        return stored

    def _put(self, k: Key, write: Write, now: int) -> None:
        old = self._items.get(k)
        if old is not None:
            self._remove(k, old)
        cost = len(write.blob) + len(k[1]) + ENTRY_OVERHEAD
        if cost > self.budget_bytes:  # can never fit: as if stored and evicted at once
            self._evictions[k[0]] += 1
            return
        item = _Item(write.blob, now + write.ttl_ms, write.raw_size, write.stored_size, cost, write.source)
        self._items[k] = item
        self._keys.setdefault(k[0], set()).add(k[1])
        usage = self._usage.setdefault(k[0], [0, 0, 0])
        usage[0] += 1
        usage[1] += item.raw
        usage[2] += item.stored
        self.used_bytes += cost
        if write.source is not None:
            self._sources.setdefault((k[0], write.source), set()).add(k[1])
        heapq.heappush(self._heap, (item.expires_at_ms, next(self._seq), k[0], k[1], item))
        if len(self._heap) > 2 * len(self._items) + 1024:
            self._heap = [
                (i.expires_at_ms, next(self._seq), ns, key, i) for (ns, key), i in self._items.items()
            ]
            heapq.heapify(self._heap)

    def _remove(self, k: Key, item: _Item) -> None:
        del self._items[k]
        keys = self._keys[k[0]]
        keys.discard(k[1])
        usage = self._usage[k[0]]
        usage[0] -= 1
        usage[1] -= item.raw
        usage[2] -= item.stored
        self.used_bytes -= item.cost
        if item.source is not None:
            indexed = self._sources.get((k[0], item.source))
            if indexed is not None:
                indexed.discard(k[1])
                if not indexed:
                    del self._sources[(k[0], item.source)]

    def _expire(self, now: int) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, ns, key, item = heapq.heappop(heap)
            if self._items.get((ns, key)) is item:
                self._remove((ns, key), item)

    def _evict(self) -> None:
        while self.used_bytes > self.budget_bytes and self._items:
            k, item = next(iter(self._items.items()))
            self._remove(k, item)
            self._evictions[k[0]] += 1

    async def delete_many(self, namespace: str, keys: Sequence[str]) -> int:
        """Delete keys; how many existed (and had not expired)."""
        now = self._now_ms()
        deleted = 0
        for key in dict.fromkeys(keys):
            k = (namespace, key)
            item = self._items.get(k)
            if item is not None:
                self._remove(k, item)
                deleted += item.expires_at_ms > now
        return deleted

    async def delete_if_unchanged(self, namespace: str, key: str, head: bytes) -> bool:
        """Delete key if its blob still starts with ``head``."""
        k = (namespace, key)
        item = self._items.get(k)
        if item is None or not item.blob.startswith(head):
            return False
        self._remove(k, item)
        return True

    async def delete_matching(self, namespace: str, glob: str) -> int:
        """Delete the namespace's keys matching the glob, yielding to the loop between chunks."""
        regex = to_regex(glob)
        candidates = list(self._keys.get(namespace, ()))
        deleted = 0
        now = self._now_ms()
        for start in range(0, len(candidates), _SCAN_CHUNK):
            if start:
                await asyncio.sleep(0)
                now = self._now_ms()
            for key in candidates[start : start + _SCAN_CHUNK]:
                if regex.fullmatch(key.encode()):
                    item = self._items.get((namespace, key))
                    if item is not None:
                        self._remove((namespace, key), item)
                        deleted += item.expires_at_ms > now
        return deleted

    async def delete_by_source(self, namespace: str, path: str) -> int:
        """Delete the namespace's entries made from the source at path."""
        keys = self._sources.get((namespace, path))
        if not keys:
            return 0
        now = self._now_ms()
        deleted = 0
        for key in list(keys):
            item = self._items.get((namespace, key))
            if item is not None and item.source == path:
                self._remove((namespace, key), item)
                deleted += item.expires_at_ms > now
        return deleted

    def clear(self) -> None:
        """Forget every entry and lease (statistics of evictions are kept)."""
        self._items.clear()
        self._keys.clear()
        self._usage.clear()
        self._sources.clear()
        self._heap.clear()
        self._leases.clear()
        self.used_bytes = 0

    # -- leases ----------------------------------------------------------------------------

    async def acquire_lease(self, namespace: str, key: str, token: str, ttl_ms: int) -> bool:
        """Take the lease if it is free or lapsed (True too when ``token`` already holds it)."""
        now = self._now_ms()
        held = self._leases.get((namespace, key))
        if held is not None and held[1] > now:
            return held[0] == token
        self._leases[(namespace, key)] = (token, now + ttl_ms)
        return True

    async def release_lease(self, namespace: str, key: str, token: str) -> bool:
        """Give the lease back if ``token`` holds it and it has not lapsed."""
        held = self._leases.get((namespace, key))
        if held is None or held[0] != token:
            return False
        del self._leases[(namespace, key)]
        return held[1] > self._now_ms()

    async def lease_ttl_ms(self, namespace: str, key: str) -> int | None:
        """Milliseconds left on the lease, or None."""
        held = self._leases.get((namespace, key))
        if held is None:
            return None
        left = held[1] - self._now_ms()
        if left <= 0:
            del self._leases[(namespace, key)]
            return None
        return left

    # -- accounting ------------------------------------------------------------------------

    async def usage(self, namespace: str) -> Usage:
        """Exact entries and bytes of the namespace (expired ones dropped first)."""
        self._expire(self._now_ms())
        entries, raw, stored = self._usage.get(namespace, (0, 0, 0))
        return Usage(entries, raw, stored)

    def evictions(self, namespace: str) -> int:
        """Entries of the namespace evicted for space since start."""
        return self._evictions[namespace]

    def namespaces(self) -> list[str]:
        """Namespaces holding at least one entry."""
        return [ns for ns, keys in self._keys.items() if keys]

    def keys(self, namespace: str) -> list[str]:
        """Keys of the namespace (live or not yet dropped)."""
        return list(self._keys.get(namespace, ()))

    async def ping(self) -> None:
        """Always answers."""

    async def close(self) -> None:
        """Nothing to release."""

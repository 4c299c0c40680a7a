"""The collection summary: counts and bytes by format, status and category, computed by walking
the catalog and kept in the cache service under the catalog's version, so a summary of an older
catalog is never served (and every change also invalidates the old entries)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

from services.batch.catalog_store import CatalogStore

__all__ = ["Invalidation", "Summaries", "Summary", "SummaryCache"]

log = logging.getLogger("mediasuite.batch.summary")


@dataclass
class Summary:
    """Counts and bytes: in total (trashed items excluded), by format and category (trashed
    excluded), by status (every status)."""

    total: tuple[int, int] = (0, 0)
    by_format: dict[str, tuple[int, int]] = field(default_factory=dict)
    by_status: dict[str, tuple[int, int]] = field(default_factory=dict)
    by_category: dict[str, tuple[int, int]] = field(default_factory=dict)
    computed_ns: int = 0
    cached: bool = False

    def to_json(self) -> bytes:
        """What the cache keeps."""
        return json.dumps(
            [self.total, self.by_format, self.by_status, self.by_category, self.computed_ns],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Summary:
        """A summary the cache kept."""
        total, by_format, by_status, by_category, computed = json.loads(data)

        def pairs(d: dict[str, list[int]]) -> dict[str, tuple[int, int]]:
            return {k: (int(v[0]), int(v[1])) for k, v in d.items()}

        return cls(
            (int(total[0]), int(total[1])),
            pairs(by_format),
            pairs(by_status),
            pairs(by_category),
            int(computed),
            cached=True,
        )


class SummaryCache(Protocol):
    """Where summaries are cached (the cache service's collection_summary namespace)."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes) -> None: ...

    async def invalidate(self, prefix: str) -> None: ...


class Summaries:
    """Computes summaries, through the cache."""

    def __init__(self, catalog: CatalogStore, cache: SummaryCache) -> None:
        self.catalog = catalog
        self.cache = cache
        # Several suites may share one cache: the key names this catalog (its Redis key prefix).
        self.key_prefix = f"summary/{hashlib.sha256(catalog.prefix.encode()).hexdigest()[:12]}/"

    async def get(self) -> Summary:
        """The summary of the catalog as it is now (from the cache when it has this version)."""
        version = await self.catalog.version()
        key = f"{self.key_prefix}v{version}"
        cached = await self.cache.get(key)
        if cached is not None:
            try:
                return Summary.from_json(cached)
            except (ValueError, TypeError, IndexError):
                log.warning("unreadable summary in the cache under %s: recomputing", key)
        summary = await self.compute()
        if await self.catalog.version() == version:  # nothing changed while it was counted
            await self.cache.set(key, summary.to_json())
        return summary

    async def compute(self) -> Summary:
        """Walk the whole catalog (a chunk in memory at a time)."""
        by_format: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        by_status: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        by_category: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        total = [0, 0]
        async for chunk in self.catalog.walk():
            for _, item in chunk:
                by_status[item.status][0] += 1
                by_status[item.status][1] += item.size_bytes
                if item.status == "trashed":
                    continue
                total[0] += 1
                total[1] += item.size_bytes
                for bucket in (by_format[item.format], by_category[item.category]):
                    bucket[0] += 1
                    bucket[1] += item.size_bytes

        def pairs(d: dict[str, list[int]]) -> dict[str, tuple[int, int]]:
            return {k: (v[0], v[1]) for k, v in d.items()}

        return Summary(
            (total[0], total[1]), pairs(by_format), pairs(by_status), pairs(by_category), time.time_ns()
        )

    async def invalidate(self) -> None:
        """Drop every cached summary of this catalog (after a change)."""
        await self.cache.invalidate(self.key_prefix)


class Invalidation:
    """Invalidates cached summaries after catalog changes, without making writers wait: one call in
    flight at a time, and one more after it when changes came meanwhile. (Cached summaries are keyed
    by catalog version, so even a late invalidation never lets a stale one be served.)"""

    def __init__(self, summaries: Summaries) -> None:
        self.summaries = summaries
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def changed(self) -> None:
        """The catalog changed."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            await self.summaries.invalidate()
            if not self._again:
                return

    async def close(self) -> None:
        """Wait for an invalidation in flight."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

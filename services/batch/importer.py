"""Import: each file of the walk becomes a catalog item with the metadata processing's probe finds.

Re-import is incremental: a file whose size and modification time equal the catalog's is skipped
("unchanged") without a call; the rest are probed in one ProbeMany call per unit (images) or one
ProbeVideo each (videos), hashed, and their changes derived."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Protocol

from services.batch.changes import Change, Media
from services.batch.selection import VIDEO_EXTENSIONS, MediaRoot
from services.batch.work import Entry, ItemFailure, Outcome, UnitContext

__all__ = ["ImportWorker", "Prober"]


class Prober(Protocol):
    """Reads metadata of files under the media root (the processing service)."""

    async def probe_images(
        self, paths: Sequence[str], deadline_s: float
    ) -> tuple[list[Media | ItemFailure], int]: ...

    async def probe_video(self, path: str, deadline_s: float) -> tuple[Media, int]: ...


class ImportWorker:
    """Imports units of paths."""

    def __init__(self, prober: Prober, root: MediaRoot, unit_size: int, force: bool) -> None:
        self.prober = prober
        self.root = root
        self.unit_size = unit_size
        self.force = force

    def _stat(self, entries: list[Entry]) -> list[os.stat_result | None]:
        found: list[os.stat_result | None] = []
        for entry in entries:
            try:
                found.append((self.root.real / entry.path).stat())
            except OSError:
                found.append(None)
        return found

    async def run(self, context: UnitContext, entries: list[Entry]) -> list[Outcome]:
        """Skip the unchanged, probe the rest (images together, videos one by one)."""
        started = time.perf_counter()
        stats = await asyncio.to_thread(self._stat, entries)
        outcomes: dict[int, Outcome] = {}
        images: list[Entry] = []
        videos: list[Entry] = []
        for entry, info in zip(entries, stats, strict=True):
            if info is None:
                failure = ItemFailure(5, "NOT_FOUND", f"{entry.path!r} disappeared from the media root")
                outcomes[entry.index] = Outcome(
                    entry.index, entry.path, entry.item_id, "failed", failure=failure
                )
                continue
            item = entry.item
            if (
                not self.force
                and item is not None
                and item.size_bytes == info.st_size
                and item.mtime_ns == info.st_mtime_ns
            ):
                outcomes[entry.index] = Outcome(
                    entry.index, entry.path, entry.item_id, "skipped", reason="unchanged"
                )
                continue
            if PurePosixPath(entry.path).suffix.lower() in VIDEO_EXTENSIONS:
                videos.append(entry)
            else:
                images.append(entry)

        async def probe_images() -> None:
            if not images:
                return
            try:
                results, attempts = await self.prober.probe_images(
                    [e.path for e in images], context.item_deadline_s
                )
            except ItemFailure as failure:
                results, attempts = [failure] * len(images), failure.attempts
            elapsed = (time.perf_counter() - started) / max(1, len(images))
            for entry, result in zip(images, results, strict=True):
                outcomes[entry.index] = _outcome(entry, result, attempts, elapsed)

        mtimes = {e.index: i.st_mtime_ns for e, i in zip(entries, stats, strict=True) if i is not None}

        async def probe_video(entry: Entry) -> None:
            began = time.perf_counter()
            try:
                media, attempts = await self.prober.probe_video(entry.path, context.item_deadline_s)
                result: Media | ItemFailure = replace(media, mtime_ns=mtimes[entry.index])
            except ItemFailure as failure:
                result, attempts = failure, failure.attempts
            outcomes[entry.index] = _outcome(entry, result, attempts, time.perf_counter() - began)

        await asyncio.gather(probe_images(), *(probe_video(e) for e in videos))
        return [outcomes[e.index] for e in entries]


def _outcome(entry: Entry, result: Media | ItemFailure, attempts: int, elapsed: float) -> Outcome:
    if isinstance(result, ItemFailure):
        return Outcome(
            entry.index, entry.path, entry.item_id, "failed", failure=result, attempts=result.attempts
        )
    change = Change("import", path=entry.path, media=result)
    return Outcome(
        entry.index, entry.path, entry.item_id, "done", change=change, attempts=attempts, duration_s=elapsed
    )

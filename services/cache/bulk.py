"""Bulk maintenance of the cache: invalidation (by prefix, pattern or source) and warm-up streams."""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field

from services.cache.entries import Fingerprint
from services.cache.freshness import check_fingerprint
from services.cache.globs import check_pattern, escape
from services.cache.store import CacheStore, NewEntry
from services.runtime.errors import InvalidArgument, LimitExceeded, MediasuiteError

__all__ = ["WarmItem", "WarmReport", "invalidate", "warm"]

MAX_REFUSALS = 10
WARM_BATCH = 256


@dataclass(frozen=True, slots=True)
class WarmItem:
    """One entry of a Warm stream."""

    namespace: str
    entry: NewEntry
    only_if_absent: bool = False


@dataclass
class WarmReport:
    """What a Warm stream stored, skipped and refused."""

    stored: int = 0
    skipped: int = 0
    refused: int = 0
    stored_bytes: int = 0
    refusals: list[str] = field(default_factory=list)


async def invalidate(
    store: CacheStore,
    namespace: str,
    *,
    prefix: str | None = None,
    pattern: str | None = None,
    source_path: str | None = None,
) -> int:
    """Delete what matches a key prefix, a glob pattern or a source path, in one or every ("*")
    namespace, incrementally; how many entries were deleted."""
    names = store.namespaces.names if namespace == "*" else [store.namespaces.get(namespace).name]
    chosen = [s for s in (prefix, pattern, source_path) if s is not None]
    if len(chosen) != 1:
        raise InvalidArgument("set exactly one of prefix, pattern or source_path", field="selector")
    glob = None
    if prefix is not None:
        if len(prefix.encode()) > store.limits.max_key_bytes:
            raise LimitExceeded(
                "max_key_bytes",
                store.limits.max_key_bytes,
                len(prefix.encode()),
                env="CACHE_MAX_KEY_BYTES",
                what="prefix bytes",
            )
        glob = escape(prefix) + "*"
    elif pattern is not None:
        if not pattern:
            raise InvalidArgument('pattern must not be empty (use prefix "" for everything)', field="pattern")
        if len(pattern.encode()) > 2 * store.limits.max_key_bytes:
            raise LimitExceeded(
                "max_pattern_bytes",
                2 * store.limits.max_key_bytes,
                len(pattern.encode()),
                env="CACHE_MAX_KEY_BYTES",
                what="pattern bytes",
            )
        problem = check_pattern(pattern)
        if problem:
            raise InvalidArgument(f"pattern {pattern[:100]!r} {problem}", field="pattern")
        glob = pattern
    else:
        assert source_path is not None  # noqa: S101 (narrows a type: an invariant of the code above, not a check of input)
        check_fingerprint(Fingerprint(source_path), "source")
    deleted = 0
    for name in names:
        if glob is not None:
            count = await store.backend.delete_matching(name, glob)
        else:
            count = await store.backend.delete_by_source(name, source_path or "")
        store.stats.counters[name].deletes += count
        deleted += count
    return deleted


async def warm(store: CacheStore, items: AsyncIterable[WarmItem]) -> WarmReport:
    """Store a stream of entries in batches; refused entries are counted with their reasons."""
    report = WarmReport()
    batches: dict[str, list[tuple[NewEntry, int, bool]]] = {}
    pending = 0
    index = 0
    async for item in items:
        try:
            policy = store.namespaces.get(item.namespace)
            ttl_ms = store.check_entry(policy, item.entry, "entry.")
        except MediasuiteError as error:
            report.refused += 1
            if len(report.refusals) < MAX_REFUSALS:
                report.refusals.append(
                    f"#{index} {item.namespace[:60]}/{item.entry.key[:100]}: {error.message}"
                )
        else:
            batches.setdefault(policy.name, []).append((item.entry, ttl_ms, item.only_if_absent))
            pending += 1
            if pending >= WARM_BATCH:
                await _flush_warm(store, batches, report)
                pending = 0
        index += 1
    await _flush_warm(store, batches, report)
    return report


async def _flush_warm(
    store: CacheStore, batches: dict[str, list[tuple[NewEntry, int, bool]]], report: WarmReport
) -> None:
    for namespace, items in batches.items():
        writes = await store.encode_all(items)
        stored = await store.backend.set_many(namespace, writes)
        counters = store.stats.counters[namespace]
        for write, ok in zip(writes, stored, strict=True):
            if ok:
                report.stored += 1
                report.stored_bytes += write.stored_size
                counters.sets += 1
                store.signals.notify(namespace, write.key)
            else:
                report.skipped += 1
    batches.clear()

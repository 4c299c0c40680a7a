"""The processing service's operations, transport-free: resolve the media, look in the derived store
and the cache, run the work in the pool, deliver the output inline or stored, remember it.

Every result is keyed by its content address (source hash + operation + parameters + engine
version), so a repeat is served from the cache or the derived store and a retry is idempotent.
Many items in one call (ProbeMany) share one cache lookup and one cache store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from opentelemetry import metrics, trace

from services.processing.cache_client import Fingerprint, NewValue, NoCache
from services.processing.codec import from_json, pack_output, to_json, unpack_output
from services.processing.engine.encode import MEDIA_TYPES, Encoded
from services.processing.engine.frames import FramesResult
from services.processing.engine.tasks import ENGINE_VERSION, TaskResult, run_task
from services.processing.limits import Limits
from services.processing.media import HashMemo, MediaRoot, Source
from services.processing.store import DerivedStore, content_key
from services.runtime.errors import FailedPrecondition, NotFound

__all__ = ["NAMESPACES", "Delivered", "MediaSpec", "Processor", "ResultCache", "Runner", "Served"]

T = TypeVar("T")

# operation -> the cache namespace its results live in
NAMESPACES = {
    "probe": "media_metadata",
    "thumbnail": "thumbnail",
    "video_thumbnail": "thumbnail",
    "convert": "format_conversion",
    "optimize": "format_conversion",
    "enhance": "format_conversion",
    "crop": "format_conversion",
    "watermark": "format_conversion",
    "analyze_quality": "quality_analysis",
    "probe_video": "video_analysis",
    "validate_video": "video_analysis",
    "extract_frames": "image_analysis",
}
# Room for the response fields around inline bytes in one gRPC message.
_MESSAGE_OVERHEAD = 64 * 1024


class ResultCache(Protocol):
    """Where results are cached (the cache service, or nothing)."""

    async def get(self, namespace: str, key: str, fingerprint: Fingerprint | None = None) -> bytes | None: ...

    async def set(
        self, namespace: str, key: str, value: bytes, fingerprint: Fingerprint | None = None
    ) -> None: ...

    async def get_many(
        self, namespace: str, keys: Sequence[str], fingerprints: Mapping[str, Fingerprint] | None = None
    ) -> list[bytes | None]: ...

    async def set_many(self, namespace: str, entries: Sequence[NewValue]) -> None: ...


class Runner(Protocol):
    """Runs a function off the event loop (the worker pool)."""

    async def run(self, func: Callable[..., Any], *args: Any, time_limit: float) -> Any: ...


@dataclass(frozen=True)
class MediaSpec:
    """A media reference from a request: a path under the media root, or inline bytes."""

    path: str = ""
    inline: bytes = b""
    field: str = "media"

    @property
    def is_inline(self) -> bool:
        """True for inline bytes."""
        return not self.path


@dataclass(frozen=True)
class Served:
    """How a call was served."""

    cached: bool
    elapsed_s: float
    engine_version: str = ENGINE_VERSION


@dataclass(frozen=True)
class Delivered:
    """An output, inline (``data``) or in the derived store (``stored_path``)."""

    content_key: str
    media_type: str
    size_bytes: int
    width: int
    height: int
    data: bytes = b""
    stored_path: str = ""
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


class Processor:
    """Every operation on one media item."""

    def __init__(
        self,
        *,
        media_root: MediaRoot,
        store: DerivedStore,
        runner: Runner,
        cache: ResultCache | None,
        limits: Limits,
        meter: metrics.Meter | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.media_root = media_root
        self.store = store
        self.runner = runner
        self.cache: ResultCache = cache or NoCache()
        self.caching = cache is not None
        self.limits = limits
        self._tracer = tracer  # None when tracing is off: no span is made
        self._hashes = HashMemo()
        meter = meter or metrics.NoOpMeterProvider().get_meter("noop")
        self._duration = meter.create_histogram(
            "processing.operation.duration", unit="ms", description="Time to serve an operation, by outcome"
        )
        self._operations = meter.create_counter(
            "processing.operations", unit="{operation}", description="Operations served, by cache outcome"
        )
        # What the monitor's default rule `media_processing_time` watches (processing.duration.p95,
        # in seconds, the original system's unit): every operation, by operation.
        self._seconds = meter.create_histogram(
            "processing.duration", unit="s", description="Time to serve an operation (any outcome)"
        )

    # ---- building blocks -------------------------------------------------------------------

    def source(self, media: MediaSpec) -> Source:
        """The checked source of a reference (stat only). Blocking but cheap."""
        if media.is_inline:
            return self.media_root.inline(media.inline, f"{media.field}.inline")
        return self.media_root.resolve(media.path, f"{media.field}.path")

    def _hashed_now(self, media: MediaSpec) -> Source:
        """The source with its content hash (memoised per unchanged file). Blocking: call off-loop."""
        source = self.source(media)
        try:
            return source.with_hash(self._hashes.hash_of(source))
        except OSError as error:  # removed or made unreadable since it was checked
            raise NotFound(f"{source.label} cannot be read: {error.strerror}") from None

    async def hashed(self, media: MediaSpec) -> Source:
        """The source with its content hash (memoised per unchanged file), computed off the loop."""
        return await asyncio.to_thread(self._hashed_now, media)

    async def hashed_many(self, items: Sequence[MediaSpec]) -> list[Source | Exception]:
        """Each item's hashed source, or why it has none, in order: a few thread hops for all of them
        (one per worker, so large files still hash in parallel) instead of one per item."""

        def work(chunk: Sequence[MediaSpec]) -> list[Source | Exception]:
            out: list[Source | Exception] = []
            for media in chunk:
                try:
                    out.append(self._hashed_now(media))
                except Exception as error:  # each item fails on its own, reported per item
                    out.append(error)
            return out

        size = -(-len(items) // max(1, getattr(self.runner, "capacity", 4)))
        chunks = [items[i : i + size] for i in range(0, len(items), size)] if items else []
        parts = await asyncio.gather(*(asyncio.to_thread(work, chunk) for chunk in chunks))
        return [source for part in parts for source in part]

    def _timeout(self, deadline_s: float | None) -> float:
        limit = self.limits.operation_timeout_seconds
        return limit if deadline_s is None else max(0.001, min(limit, deadline_s))

    async def run(
        self, task: str, source: Source, params: Any, deadline_s: float | None, *, need_hash: bool = True
    ) -> TaskResult:
        """Run an engine task in the pool (traced as ``processing.run <task>``: queue wait and work)."""
        args = (run_task, task, source, params, self.limits, need_hash)
        if self._tracer is None:
            result: TaskResult = await self.runner.run(*args, time_limit=self._timeout(deadline_s))
            return result
        with self._tracer.start_as_current_span(
            f"processing.run {task}",
            attributes={"processing.operation": task, "processing.source": source.label},
        ):
            result = await self.runner.run(*args, time_limit=self._timeout(deadline_s))
            return result

    def _fingerprint(self, source: Source) -> Fingerprint | None:
        """The file a result came from (inline media has none: its key is its content)."""
        if not source.path:
            return None
        return Fingerprint(source.relative_path, source.size_bytes, source.mtime_ns, source.content_hash)

    def _record(self, operation: str, cached: bool, started: float) -> Served:
        elapsed = time.perf_counter() - started
        attributes: dict[str, str | bool] = {"operation": operation, "cached": cached}
        self._duration.record(elapsed * 1000, attributes)
        self._seconds.record(elapsed, {"operation": operation})
        self._operations.add(1, attributes)
        return Served(cached, elapsed)

    # ---- results that are data (probe, analyses) -------------------------------------------

    async def data_op(
        self,
        operation: str,
        media: MediaSpec,
        params: Any,
        kind: type[T],
        deadline_s: float | None,
        *,
        use_cache: bool = True,
    ) -> tuple[T, str, Source, Served]:
        """A data result (dataclass ``kind``), its source's content hash, the source, how it was served."""
        started = time.perf_counter()
        namespace = NAMESPACES[operation]
        if not (use_cache and self.caching):
            source = await asyncio.to_thread(self.source, media)
            result = await self.run(operation, source, params, deadline_s, need_hash=use_cache)
            value: T = result.value
            return (
                value,
                result.content_hash,
                source.with_hash(result.content_hash),
                self._record(operation, False, started),
            )
        source = await self.hashed(media)
        key = _data_key(operation, source, params)
        cached = await self.cache.get(namespace, key, self._fingerprint(source))
        if cached is not None:
            try:
                return (
                    from_json(kind, cached),
                    source.content_hash,
                    source,
                    self._record(operation, True, started),
                )
            except ValueError:
                pass  # a value we cannot read is a miss
        result = await self.run(operation, source, params, deadline_s)
        await self.cache.set(namespace, key, to_json(result.value), self._fingerprint(source))
        return result.value, result.content_hash, source, self._record(operation, False, started)

    async def data_many(
        self,
        operation: str,
        items: list[MediaSpec],
        params: Any,
        kind: type[T],
        deadline_s: float | None,
        *,
        use_cache: bool = True,
    ) -> list[tuple[T, str, Source, Served] | Exception]:
        """:meth:`data_op` over many items, in order, each succeeding or failing on its own (its
        exception in its place). With the cache, every item is looked up in one GetMany and the
        computed results stored in one SetMany: two cache calls, not two per item."""
        self._check_many(len(items))
        if not (use_cache and self.caching):
            return await self.each(
                items,
                lambda media: self.data_op(operation, media, params, kind, deadline_s, use_cache=use_cache),
            )
        started = time.perf_counter()
        namespace = NAMESPACES[operation]
        sources = await self.hashed_many(items)
        keys = [_data_key(operation, s, params) if isinstance(s, Source) else "" for s in sources]
        fingerprints: dict[str, Fingerprint] = {}
        for key, source in zip(keys, sources, strict=True):
            fingerprint = self._fingerprint(source) if isinstance(source, Source) else None
            if fingerprint is not None:
                fingerprints[key] = fingerprint  # a copy's differs only in path: the content hash decides
        unique = list(dict.fromkeys(k for k in keys if k))
        found = dict(zip(unique, await self.cache.get_many(namespace, unique, fingerprints), strict=True))
        fresh: dict[str, NewValue] = {}

        async def one(index: int) -> tuple[T, str, Source, Served]:
            source, key = sources[index], keys[index]
            if not isinstance(source, Source):
                raise source
            cached = found.get(key)
            if cached is not None:
                try:
                    value: T = from_json(kind, cached)
                    return value, source.content_hash, source, self._record(operation, True, started)
                except ValueError:
                    pass  # a value we cannot read is a miss
            result = await self.run(operation, source, params, deadline_s)
            fresh[key] = NewValue(key, to_json(result.value), self._fingerprint(source))
            return result.value, result.content_hash, source, self._record(operation, False, started)

        outcomes = await self._gathered(list(range(len(items))), one)
        await self.cache.set_many(namespace, list(fresh.values()))
        return outcomes

    # ---- results that are images -----------------------------------------------------------

    async def image_op(
        self,
        operation: str,
        media: MediaSpec,
        params: Any,
        mode: str,
        deadline_s: float | None,
        *,
        split: Callable[[Any], tuple[Encoded, dict[str, Any]]] = lambda value: (value, {}),
        key_params: Any = None,
    ) -> tuple[Delivered, Served]:
        """An image output (``mode``: inline, store or auto), from the store, the cache or the pool."""
        started = time.perf_counter()
        namespace = NAMESPACES[operation]
        lookup = mode == "store" or self.caching  # else hashing first buys nothing: the worker hashes
        source = await self.hashed(media) if lookup else await asyncio.to_thread(self.source, media)
        key_material = _params(params if key_params is None else key_params)
        if source.content_hash:
            key = content_key(source.content_hash, operation, key_material, ENGINE_VERSION)
            found = await self._lookup(namespace, f"{operation}/{key}", key, mode, self._fingerprint(source))
            if found is not None:
                return found, self._record(operation, True, started)
        result = await self.run(operation, source, params, deadline_s)
        key = content_key(result.content_hash, operation, key_material, ENGINE_VERSION)
        encoded, extras = split(result.value)
        meta = {"format": encoded.format, "width": encoded.width, "height": encoded.height, "extras": extras}
        delivered = await self._deliver(key, meta, encoded.data, mode)
        if len(encoded.data) <= self.limits.inline_output_max_bytes:
            await self.cache.set(
                namespace, f"{operation}/{key}", pack_output(meta, encoded.data), self._fingerprint(source)
            )
        return delivered, self._record(operation, False, started)

    async def _lookup(
        self, namespace: str, cache_key: str, key: str, mode: str, fingerprint: Fingerprint | None
    ) -> Delivered | None:
        if mode != "inline":
            stored = await asyncio.to_thread(self.store.find_meta, key)
            if stored is not None:
                meta, relative = stored
                return _delivered(key, meta, b"", relative, _size_of(self.store, relative))
        value = await self.cache.get(namespace, cache_key, fingerprint)
        if value is None:
            return None
        try:
            meta, data = unpack_output(value)
            return await self._deliver(key, meta, data, mode)
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: a miss

    async def _deliver(self, key: str, meta: dict[str, Any], data: bytes, mode: str) -> Delivered:
        inline = mode == "inline" or (mode == "auto" and len(data) <= self.limits.inline_output_max_bytes)
        if inline:
            room = self.limits.max_message_bytes - _MESSAGE_OVERHEAD
            if len(data) > room:
                raise FailedPrecondition(
                    f"the output is {len(data)} bytes, more than a response carries ({room}): "
                    "ask for OUTPUT_MODE_STORE, a smaller size or a lossy format"
                )
            return _delivered(key, meta, data, "", len(data))
        relative = await asyncio.to_thread(self.store.write_with_meta, key, meta, data)
        return _delivered(key, meta, b"", relative, len(data))

    # ---- many outputs (ExtractFrames) ------------------------------------------------------

    async def frames_op(
        self, media: MediaSpec, params: Any, mode: str, deadline_s: float | None
    ) -> tuple[FramesResult, list[Delivered], Served]:
        """Frames of an animation or video; each output delivered on its own (not cached: many outputs)."""
        started = time.perf_counter()
        source = await asyncio.to_thread(self.source, media)
        result = await self.run("extract_frames", source, params, deadline_s)
        frames: FramesResult = result.value
        delivered: list[Delivered] = []
        inline_total = 0
        for frame in frames.frames:
            encoded = frame.encoded
            key = content_key(
                result.content_hash, "extract_frames", [_params(params), frame.index], ENGINE_VERSION
            )
            meta = {"format": encoded.format, "width": encoded.width, "height": encoded.height}
            frame_mode = mode
            if mode == "auto":
                fits = inline_total + len(encoded.data) <= self.limits.inline_output_max_bytes
                frame_mode = "inline" if fits else "store"
            if frame_mode == "inline":
                inline_total += len(encoded.data)
                if inline_total > self.limits.max_message_bytes - _MESSAGE_OVERHEAD:
                    raise FailedPrecondition(
                        f"the frames add up to more than a response carries ({inline_total} bytes so far): "
                        "ask for OUTPUT_MODE_STORE, fewer frames or a smaller size"
                    )
            delivered.append(await self._deliver(key, meta, encoded.data, frame_mode))
        return frames, delivered, self._record("extract_frames", False, started)

    # ---- ProbeMany -------------------------------------------------------------------------

    def _check_many(self, count: int) -> None:
        if count > self.limits.max_probe_many:
            raise self.limits.exceeded("max_probe_many", count, "items in one call")

    async def each(
        self,
        items: list[MediaSpec],
        call: Callable[[MediaSpec], Any],
    ) -> list[Any]:
        """Run ``call`` on every item, at most as many at once as the pool can take without refusing."""
        self._check_many(len(items))
        return await self._gathered(items, call)

    async def _gathered(self, items: Sequence[Any], call: Callable[[Any], Any]) -> list[Any]:
        """``call`` on every item, a few at once; an item's exception is returned in its place."""
        gate = asyncio.Semaphore(max(1, getattr(self.runner, "capacity", 4)))

        async def one(item: Any) -> Any:
            async with gate:
                try:
                    return await call(item)
                except Exception as error:  # each item fails on its own, reported per item
                    return error

        return list(await asyncio.gather(*(one(item) for item in items)))


def _data_key(operation: str, source: Source, params: Any) -> str:
    """The cache key of a data result: the operation and its content key."""
    return f"{operation}/{content_key(source.content_hash, operation, _params(params), ENGINE_VERSION)}"


def _params(params: Any) -> Any:
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return dataclasses.asdict(params)
    if isinstance(params, tuple | list):
        return [_params(p) for p in params]
    if isinstance(params, Source):
        return params.content_hash
    return params


def _size_of(store: DerivedStore, relative: str) -> int:
    return (store.root / relative).stat().st_size


def _delivered(key: str, meta: dict[str, Any], data: bytes, stored: str, size: int) -> Delivered:
    fmt = str(meta["format"])
    return Delivered(
        content_key=key,
        media_type=MEDIA_TYPES.get(fmt, "application/octet-stream"),
        size_bytes=size,
        width=int(meta["width"]),
        height=int(meta["height"]),
        data=data,
        stored_path=stored,
        extras=dict(meta.get("extras") or {}),
    )

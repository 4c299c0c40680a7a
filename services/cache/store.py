"""The cache itself: namespaces, limits, compression and freshness over a storage backend.

``CacheStore`` is what the servicer calls, one method per RPC (leases are in ``leases.py``,
invalidation and warm-up in ``bulk.py``, statistics in ``stats.py``). It knows nothing of gRPC:
it takes and returns plain values and raises the runtime's domain errors, naming the field and
the limit at fault.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from services.cache.backend import Backend, BackendKind, BackendState, Usage, Write
from services.cache.codecs import Codec, Compressor
from services.cache.entries import Fingerprint, Header, decode_value, pack_entry, read_header
from services.cache.freshness import SourceChecker, check_fingerprint
from services.cache.namespaces import NamespacePolicy, Namespaces
from services.cache.signals import Signals
from services.cache.stats import Counters, Stats, StatsReport
from services.runtime.errors import InvalidArgument, LimitExceeded

__all__ = [
    "CacheStore",
    "Hit",
    "Limits",
    "Lookup",
    "Miss",
    "NewEntry",
]

log = logging.getLogger("mediasuite.cache")

# Values at least this large are compressed, decompressed and packed in a worker thread: below
# it the work takes less time than the hop to a thread would.
OFFLOAD_BYTES = 64 * 1024
MAX_CONTENT_TYPE = 255
STATS_WAIT = 2.0


@dataclass(frozen=True)
class Limits:
    """Limits on what callers send (each named by its variable in errors)."""

    max_key_bytes: int = 1024
    max_value_bytes: int = 8 * 1024**2
    max_keys_per_call: int = 1000
    max_response_bytes: int = 64 * 1024**2 - 64 * 1024


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to store."""

    key: str
    value: bytes
    ttl: float | None = None  # seconds; None: the namespace's default
    fingerprint: Fingerprint | None = None
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    """A fresh value and the metadata stored with it."""

    value: bytes
    header: Header


class Miss(enum.IntEnum):
    """Why a Get found nothing; the numbers are those of the proto's MissReason."""

    ABSENT = 1
    STALE = 2


Lookup = Hit | Miss
"""The outcome of reading one key: a hit, or a miss and its reason."""


class CacheStore:
    """Namespaced entries over a backend, with limits, compression, freshness and statistics."""

    def __init__(
        self,
        namespaces: Namespaces,
        backend: Backend,
        *,
        compressor: Compressor,
        limits: Limits,
        checker: SourceChecker,
        signals: Signals,
        stats: Stats,
        state: Callable[[], BackendState],
        stats_refresh: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespaces = namespaces
        self.backend = backend
        self.stats = stats
        self.limits = limits
        self._compressor = compressor
        self._checker = checker
        self.signals = signals
        self._state = state
        self._stats_refresh = stats_refresh
        self._clock = clock
        self._usage_at = float("-inf")
        self._usage_task: asyncio.Task[None] | None = None

    # -- validation ------------------------------------------------------------------------

    def check_key(self, key: str, field: str = "key") -> None:
        """Refuse an empty key or one above CACHE_MAX_KEY_BYTES."""
        if not key:
            raise InvalidArgument(f"{field} must not be empty", field=field)
        limit = self.limits.max_key_bytes
        if len(key) * 4 > limit and len(key.encode()) > limit:
            raise LimitExceeded(
                "max_key_bytes", limit, len(key.encode()), env="CACHE_MAX_KEY_BYTES", what=f"{field} bytes"
            )

    def _check_keys(self, keys: Sequence[str]) -> None:
        """check_key on each key, naming keys[i] (one pass that only looks closer at suspects)."""
        quick = self.limits.max_key_bytes // 4
        for i, key in enumerate(keys):
            if not key or len(key) > quick:
                self.check_key(key, f"keys[{i}]")

    def _check_count(self, count: int, field: str) -> None:
        if count > self.limits.max_keys_per_call:
            raise LimitExceeded(
                "max_keys_per_call",
                self.limits.max_keys_per_call,
                count,
                env="CACHE_MAX_KEYS_PER_CALL",
                what=f"number of {field}",
            )

    def check_entry(self, policy: NamespacePolicy, entry: NewEntry, field: str) -> int:
        """Check one entry to store (``field`` prefixes the names in errors); its TTL in ms."""
        self.check_key(entry.key, f"{field}key")
        if len(entry.value) > self.limits.max_value_bytes:
            raise LimitExceeded(
                "max_value_bytes",
                self.limits.max_value_bytes,
                len(entry.value),
                env="CACHE_MAX_VALUE_BYTES",
                what=f"{field}value bytes",
            )
        if len(entry.content_type) > MAX_CONTENT_TYPE:
            raise InvalidArgument(
                f"{field}content_type must be at most {MAX_CONTENT_TYPE} characters",
                field=f"{field}content_type",
            )
        if entry.fingerprint is not None:
            check_fingerprint(entry.fingerprint, f"{field}fingerprint")
        return policy.ttl_ms(entry.ttl, f"{field}ttl")

    # -- encoding --------------------------------------------------------------------------

    def _encode(self, entry: NewEntry, ttl_ms: int, now_ms: int, only_if_absent: bool = False) -> Write:
        codec, stored = self._compressor.apply(entry.value)
        blob = pack_entry(
            codec,
            stored,
            raw_size=len(entry.value),
            stored_at_ms=now_ms,
            expires_at_ms=now_ms + ttl_ms,
            fingerprint=entry.fingerprint,
            content_type=entry.content_type,
        )
        source = entry.fingerprint.path if entry.fingerprint is not None else None
        return Write(entry.key, blob, ttl_ms, len(entry.value), len(stored), source, only_if_absent)

    async def encode_all(self, items: Sequence[tuple[NewEntry, int, bool]]) -> list[Write]:
        """(entry, ttl ms, only if absent) as backend writes; compressed off the loop when large."""
        now_ms = int(self._clock() * 1000)
        if sum(len(entry.value) for entry, _, _ in items) < OFFLOAD_BYTES:
            return [self._encode(entry, ttl, now_ms, nx) for entry, ttl, nx in items]
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: [self._encode(entry, ttl, now_ms, nx) for entry, ttl, nx in items]
        )

    async def _decode(self, header: Header, blob: bytes) -> bytes:
        if header.codec is Codec.RAW or header.raw_size < OFFLOAD_BYTES:
            return decode_value(header, blob)
        return await asyncio.get_running_loop().run_in_executor(None, decode_value, header, blob)

    def _header(self, namespace: str, key: str, blob: bytes) -> Header | None:
        try:
            return read_header(blob)
        except (ValueError, UnicodeDecodeError) as error:
            log.warning("entry %s/%s is not readable (%s): treated as absent", namespace, key[:100], error)
            return None

    # -- reads -----------------------------------------------------------------------------

    async def get(
        self,
        namespace: str,
        key: str,
        fingerprint: Fingerprint | None = None,
        verify_source: bool = False,
        *,
        count: bool = True,
    ) -> Lookup:
        """The fresh value under key, or a miss (a stale entry is deleted and counted as stale)."""
        policy = self.namespaces.get(namespace)
        self.check_key(key)
        if verify_source:
            self._checker.require()
        counters = self.stats.counters[policy.name]
        started = time.perf_counter()
        blob = await self.backend.get(namespace, key)
        counters.latency(time.perf_counter() - started)
        lookup: Lookup = Miss.ABSENT
        if blob is not None:
            lookup = self._quick(blob) or await self._lookup(
                policy, counters, key, blob, stated=fingerprint, verify=verify_source
            )
        if count:
            if lookup.__class__ is Hit:
                counters.hits += 1
            else:
                counters.misses += 1
        return lookup

    @staticmethod
    def _quick(blob: bytes) -> Hit | None:
        """The hit of a plain entry (no source to check, raw or small) without awaiting anything;
        None when the entry needs the full path (freshness, a thread for decompression, errors)."""
        try:
            header = read_header(blob)
        except (ValueError, UnicodeDecodeError):
            return None  # the full path logs it
        if header.fingerprint is not None:
            return None
        if header.codec is Codec.RAW:
            return Hit(blob[header.offset :], header)
        if header.raw_size >= OFFLOAD_BYTES:
            return None
        try:
            return Hit(decode_value(header, blob), header)
        except ValueError:
            return None

    async def _lookup(
        self,
        policy: NamespacePolicy,
        counters: Counters,
        key: str,
        blob: bytes,
        *,
        stated: Fingerprint | None,
        verify: bool,
    ) -> Lookup:
        header = self._header(policy.name, key, blob)
        if header is None:
            return Miss.ABSENT
        stored = header.fingerprint
        if stored is not None:
            stale = stated is not None and not stored.matches(stated)
            if not stale and (
                verify or (policy.freshness_checked and stated is None and self._checker.enabled)
            ):
                stale = not (await self._checker.fresh([stored]))[0]
            if stale:
                await self._drop_stale(policy.name, key, blob, header, counters)
                return Miss.STALE
        try:
            value = await self._decode(header, blob)
        except ValueError as error:
            log.warning("entry %s/%s is corrupt (%s): treated as absent", policy.name, key[:100], error)
            return Miss.ABSENT
        return Hit(value, header)

    async def _drop_stale(
        self, namespace: str, key: str, blob: bytes, header: Header, counters: Counters
    ) -> None:
        counters.stale += 1
        await self.backend.delete_if_unchanged(namespace, key, blob[: header.offset])

    def count(self, namespace: str, lookup: Lookup) -> None:
        """Count a lookup made with ``count=False`` as one hit or miss."""
        counters = self.stats.counters[namespace]
        if isinstance(lookup, Hit):
            counters.hits += 1
        else:
            counters.misses += 1

    async def get_many(
        self, namespace: str, keys: Sequence[str], fingerprints: Mapping[str, Fingerprint] | None = None
    ) -> list[Lookup]:
        """Every key's lookup, in order, from one backend round trip."""
        policy = self.namespaces.get(namespace)
        self._check_count(len(keys), "keys")
        self._check_keys(keys)
        counters = self.stats.counters[policy.name]
        started = time.perf_counter()
        blobs = await self.backend.get_many(namespace, keys)
        counters.latency(time.perf_counter() - started)
        results = await self._lookups(policy, counters, keys, blobs, fingerprints or {})
        hits = total = 0
        for lookup in results:
            if lookup.__class__ is Hit:
                hits += 1
                total += len(lookup.value)
        counters.hits += hits
        counters.misses += len(results) - hits
        if total > self.limits.max_response_bytes:
            raise LimitExceeded(
                "max_message_bytes",
                self.limits.max_response_bytes,
                total,
                env="GRPC_MAX_MESSAGE_BYTES",
                what="GetMany response bytes (ask for fewer keys per call)",
            )
        return results

    async def _lookups(
        self,
        policy: NamespacePolicy,
        counters: Counters,
        keys: Sequence[str],
        blobs: Sequence[bytes | None],
        stated: Mapping[str, Fingerprint],
    ) -> list[Lookup]:
        out: list[Lookup] = [Miss.ABSENT] * len(keys)
        found: list[tuple[int, Header, bytes]] = []
        with_source = False
        for i, blob in enumerate(blobs):
            if blob is None:
                continue
            try:
                header = read_header(blob)
            except (ValueError, UnicodeDecodeError) as error:
                log.warning(
                    "entry %s/%s is not readable (%s): treated as absent", policy.name, keys[i][:100], error
                )
                continue
            found.append((i, header, blob))
            if header.fingerprint is not None:
                with_source = True
        if with_source:
            stale = await self._stale(policy, keys, found, stated)
            for i, header, blob in found:
                if i in stale:
                    await self._drop_stale(policy.name, keys[i], blob, header, counters)
                    out[i] = Miss.STALE
            found = [item for item in found if item[0] not in stale]
        compressed = sum(header.raw_size for _, header, _ in found if header.codec is not Codec.RAW)
        if compressed >= OFFLOAD_BYTES:
            decoded = await asyncio.get_running_loop().run_in_executor(None, _decode_many, found)
        else:
            decoded = _decode_many(found)
        for (i, header, _), value in zip(found, decoded, strict=True):
            if value is not None:
                out[i] = Hit(value, header)
        return out

    async def _stale(
        self,
        policy: NamespacePolicy,
        keys: Sequence[str],
        found: Sequence[tuple[int, Header, bytes]],
        stated: Mapping[str, Fingerprint],
    ) -> set[int]:
        """Positions of the found entries that are stale (checking files in one thread hop)."""
        stale: set[int] = set()
        to_verify: list[tuple[int, Fingerprint]] = []
        for i, header, _ in found:
            fp = header.fingerprint
            if fp is None:
                continue
            current = stated.get(keys[i])
            if current is not None:
                if not fp.matches(current):
                    stale.add(i)
            elif policy.freshness_checked and self._checker.enabled:
                to_verify.append((i, fp))
        if to_verify:
            fresh = await self._checker.fresh([fp for _, fp in to_verify])
            stale.update(i for (i, _), ok in zip(to_verify, fresh, strict=True) if not ok)
        return stale

    # -- writes ----------------------------------------------------------------------------

    async def set(self, namespace: str, entry: NewEntry, lease_token: str = "") -> Header:
        """Store one entry; with a lease token, complete that lease (waiters receive the value)."""
        policy = self.namespaces.get(namespace)
        ttl_ms = self.check_entry(policy, entry, "")
        if len(lease_token) > 256:
            raise InvalidArgument("lease_token is not a token GetOrLease gave", field="lease_token")
        (write,) = await self.encode_all([(entry, ttl_ms, False)])
        counters = self.stats.counters[policy.name]
        started = time.perf_counter()
        await self.backend.set_many(namespace, [write])
        counters.latency(time.perf_counter() - started)
        counters.sets += 1
        if lease_token:
            await self.backend.release_lease(namespace, entry.key, lease_token)
        self.signals.notify(namespace, entry.key)
        return read_header(write.blob)

    async def set_many(self, namespace: str, entries: Sequence[NewEntry]) -> tuple[int, int]:
        """Store entries in one backend round trip; (stored count, stored bytes)."""
        policy = self.namespaces.get(namespace)
        self._check_count(len(entries), "entries")
        items = [
            (entry, self.check_entry(policy, entry, f"entries[{i}]."), False)
            for i, entry in enumerate(entries)
        ]
        writes = await self.encode_all(items)
        counters = self.stats.counters[policy.name]
        started = time.perf_counter()
        await self.backend.set_many(namespace, writes)
        counters.latency(time.perf_counter() - started)
        counters.sets += len(writes)
        for entry in entries:
            self.signals.notify(namespace, entry.key)
        return len(writes), sum(w.stored_size for w in writes)

    async def delete(self, namespace: str, key: str) -> bool:
        """Delete one key; whether it existed."""
        return await self.delete_many(namespace, [key], field="key") > 0

    async def delete_many(self, namespace: str, keys: Sequence[str], field: str = "") -> int:
        """Delete keys in one backend round trip; how many existed."""
        policy = self.namespaces.get(namespace)
        self._check_count(len(keys), "keys")
        for i, key in enumerate(keys):
            self.check_key(key, field or f"keys[{i}]")
        counters = self.stats.counters[policy.name]
        started = time.perf_counter()
        deleted = await self.backend.delete_many(namespace, keys)
        counters.latency(time.perf_counter() - started)
        counters.deletes += deleted
        return deleted

    # -- statistics ------------------------------------------------------------------------

    def policies(self) -> list[NamespacePolicy]:
        """Every namespace's policy."""
        return list(self.namespaces)

    async def report(self, namespace: str = "") -> StatsReport:
        """Statistics of one namespace (or all) and the total, with fresh usage figures."""
        names = [self.namespaces.get(namespace).name] if namespace else self.namespaces.names
        await self.refresh_usage()
        return self.stats.report(names, self.backend.evictions, self._state())

    async def refresh_usage(self, force: bool = False) -> None:
        """Recount entries and bytes when the last count is older than CACHE_STATS_REFRESH.

        The memory backend counts exactly and cheaply, so it is always recounted; Redis is counted
        by SCAN in the background, and a caller waits at most a couple of seconds for it.
        """
        exact = self.backend.kind is BackendKind.MEMORY
        if not (exact or force or time.monotonic() - self._usage_at >= self._stats_refresh):
            return
        if self._usage_task is None or self._usage_task.done():
            self._usage_task = asyncio.get_running_loop().create_task(self._count_usage())
        try:
            await asyncio.wait_for(asyncio.shield(self._usage_task), STATS_WAIT)
        except TimeoutError:
            log.info("counting cache entries takes longer than %ss; reporting the last count", STATS_WAIT)

    async def _count_usage(self) -> None:
        counted: dict[str, Usage] = {}
        for name in self.namespaces.names:
            counted[name] = await self.backend.usage(name)
        self.stats.usage.update(counted)
        self._usage_at = time.monotonic()


def _decode_many(found: Sequence[tuple[int, Header, bytes]]) -> list[bytes | None]:
    out: list[bytes | None] = []
    for _, header, blob in found:
        if header.codec is Codec.RAW:
            out.append(blob[header.offset :])
            continue
        try:
            out.append(decode_value(header, blob))
        except ValueError as error:
            log.warning("an entry is corrupt (%s): treated as absent", error)
            out.append(None)
    return out

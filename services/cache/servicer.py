"""gRPC servicer of the cache service: proto in, domain call, proto out.

Errors are raised by the domain (``store.py``, ``leases.py``) and mapped to status codes by the
runtime's interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from mediasuite.cache.v1 import cache_service_pb2 as pb
from mediasuite.cache.v1 import cache_service_pb2_grpc
from mediasuite.common.v1 import media_pb2
from services.cache.bulk import WarmItem, invalidate, warm
from services.cache.entries import Fingerprint, Header
from services.cache.leases import Leases
from services.cache.stats import NamespaceReport
from services.cache.store import CacheStore, Hit, Miss, NewEntry

__all__ = ["CacheServiceServicer"]

Context = Any  # grpc.aio.ServicerContext


def _fingerprint(message: media_pb2.SourceFingerprint) -> Fingerprint:
    return Fingerprint(message.path, message.size_bytes, message.mtime_ns, message.content_hash)


def _seconds(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def _timestamp(ms: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def _fill_info(message: pb.EntryInfo, info: Header) -> None:
    """Fill an EntryInfo in place (cheaper than building sub-messages and copying them in)."""
    stored_at, expires_at = info.stored_at_ms, info.expires_at_ms
    stamp = message.stored_at
    stamp.seconds = stored_at // 1000
    stamp.nanos = stored_at % 1000 * 1_000_000
    stamp = message.expires_at
    stamp.seconds = expires_at // 1000
    stamp.nanos = expires_at % 1000 * 1_000_000
    message.codec = info.codec  # type: ignore[assignment]  # an IntEnum with the proto's numbers
    message.raw_bytes = info.raw_size
    message.stored_bytes = info.stored_size
    if info.content_type:
        message.content_type = info.content_type
    fp = info.fingerprint
    if fp is not None:
        target = message.fingerprint
        target.path = fp.path
        target.size_bytes = fp.size_bytes
        target.mtime_ns = fp.mtime_ns
        target.content_hash = fp.content_hash


def _entry(message: pb.SetManyEntry | pb.SetRequest) -> NewEntry:
    return NewEntry(
        message.key,
        message.value,
        _seconds(message.ttl) if message.HasField("ttl") else None,
        _fingerprint(message.fingerprint) if message.HasField("fingerprint") else None,
        message.content_type,
    )


def _stats(row: NamespaceReport) -> pb.NamespaceStats:
    return pb.NamespaceStats(
        namespace=row.namespace,
        hits=row.hits,
        misses=row.misses,
        stale_misses=row.stale_misses,
        hit_ratio=row.hit_ratio,
        sets=row.sets,
        deletes=row.deletes,
        evictions=row.evictions,
        entries=row.usage.entries,
        raw_bytes=row.usage.raw_bytes,
        stored_bytes=row.usage.stored_bytes,
        compression_ratio=row.compression_ratio,
        latency_p50_us=row.latency_p50_us,
        latency_p99_us=row.latency_p99_us,
    )


_MISS_ABSENT = pb.GetResponse(found=False, miss_reason=pb.MISS_REASON_ABSENT)
_MISS_STALE = pb.GetResponse(found=False, miss_reason=pb.MISS_REASON_STALE)


class CacheServiceServicer(cache_service_pb2_grpc.CacheServiceServicer):
    """CacheService over a :class:`CacheStore` and its :class:`Leases`."""

    def __init__(self, store: CacheStore, leases: Leases) -> None:
        self._store = store
        self._leases = leases

    async def Get(self, request: pb.GetRequest, context: Context) -> pb.GetResponse:
        """One key's fresh value, or why it missed."""
        lookup = await self._store.get(
            request.namespace,
            request.key,
            _fingerprint(request.fingerprint) if request.HasField("fingerprint") else None,
            request.verify_source,
        )
        if lookup.__class__ is not Hit:
            return _MISS_STALE if lookup is Miss.STALE else _MISS_ABSENT
        reply = pb.GetResponse(found=True, value=lookup.value)
        _fill_info(reply.info, lookup.header)
        return reply

    async def Set(self, request: pb.SetRequest, context: Context) -> pb.SetResponse:
        """Store one entry."""
        info = await self._store.set(request.namespace, _entry(request), request.lease_token)
        reply = pb.SetResponse()
        _fill_info(reply.info, info)
        return reply

    async def Delete(self, request: pb.DeleteRequest, context: Context) -> pb.DeleteResponse:
        """Delete one key."""
        return pb.DeleteResponse(deleted=await self._store.delete(request.namespace, request.key))

    async def GetMany(self, request: pb.GetManyRequest, context: Context) -> pb.GetManyResponse:
        """Many keys in one round trip, in request order."""
        stated = {key: _fingerprint(fp) for key, fp in request.fingerprints.items()}
        keys = list(request.keys)
        lookups = await self._store.get_many(request.namespace, keys, stated)
        reply = pb.GetManyResponse()
        add = reply.results.add
        for key, lookup in zip(keys, lookups, strict=True):
            if isinstance(lookup, Hit):
                _fill_info(add(key=key, found=True, value=lookup.value).info, lookup.header)
            else:
                add(
                    key=key,
                    miss_reason=pb.MISS_REASON_STALE if lookup is Miss.STALE else pb.MISS_REASON_ABSENT,
                )
        return reply

    async def SetMany(self, request: pb.SetManyRequest, context: Context) -> pb.SetManyResponse:
        """Many entries in one round trip."""
        count, size = await self._store.set_many(request.namespace, [_entry(e) for e in request.entries])
        return pb.SetManyResponse(stored_count=count, stored_bytes=size)

    async def DeleteMany(self, request: pb.DeleteManyRequest, context: Context) -> pb.DeleteManyResponse:
        """Many keys in one round trip."""
        return pb.DeleteManyResponse(
            deleted_count=await self._store.delete_many(request.namespace, request.keys)
        )

    async def Invalidate(self, request: pb.InvalidateRequest, context: Context) -> pb.InvalidateResponse:
        """Everything matching a prefix, a pattern or a source path."""
        which = request.WhichOneof("selector")
        deleted = await invalidate(
            self._store,
            request.namespace,
            prefix=request.prefix if which == "prefix" else None,
            pattern=request.pattern if which == "pattern" else None,
            source_path=request.source_path if which == "source_path" else None,
        )
        return pb.InvalidateResponse(deleted_count=deleted)

    async def Warm(
        self, request_iterator: AsyncIterator[pb.WarmRequest], context: Context
    ) -> pb.WarmResponse:
        """Store a client stream of entries; report stored, skipped and refused."""

        async def items() -> AsyncIterator[WarmItem]:
            async for message in request_iterator:
                yield WarmItem(message.namespace, _entry(message.entry), message.only_if_absent)

        report = await warm(self._store, items())
        return pb.WarmResponse(
            stored_count=report.stored,
            skipped_count=report.skipped,
            refused_count=report.refused,
            stored_bytes=report.stored_bytes,
            refusals=report.refusals,
        )

    async def GetStats(self, request: pb.GetStatsRequest, context: Context) -> pb.GetStatsResponse:
        """Statistics per namespace, the total, and the backend's state."""
        report = await self._store.report(request.namespace)
        state = report.backend
        since = _timestamp(int(state.since * 1000))
        return pb.GetStatsResponse(
            namespaces=[_stats(row) for row in report.namespaces],
            total=_stats(report.total),
            backend=pb.BackendStatus(
                active=state.active.value,  # type: ignore[arg-type]
                configured=state.configured.value,  # type: ignore[arg-type]
                degraded=state.degraded,
                reason=state.reason,
                since=since,
                failovers=state.failovers,
            ),
        )

    async def ListNamespaces(
        self, request: pb.ListNamespacesRequest, context: Context
    ) -> pb.ListNamespacesResponse:
        """Every namespace with its TTL policy."""
        return pb.ListNamespacesResponse(
            namespaces=[
                pb.NamespacePolicy(
                    name=p.name,
                    default_ttl=_duration(p.default_ttl),
                    max_ttl=_duration(p.max_ttl),
                    freshness_checked=p.freshness_checked,
                )
                for p in self._store.policies()
            ]
        )

    async def GetOrLease(self, request: pb.GetOrLeaseRequest, context: Context) -> pb.GetOrLeaseResponse:
        """The value, or the lease to compute it, or the value once another caller set it."""
        outcome = await self._leases.get_or_lease(
            request.namespace,
            request.key,
            lease_ttl=_seconds(request.lease_ttl) if request.HasField("lease_ttl") else None,
            wait=_seconds(request.wait_timeout) if request.HasField("wait_timeout") else None,
            fingerprint=_fingerprint(request.fingerprint) if request.HasField("fingerprint") else None,
            time_left=context.time_remaining(),
        )
        if outcome.hit is not None:
            reply = pb.GetOrLeaseResponse(value=outcome.hit.value, waited=outcome.waited)
            _fill_info(reply.info, outcome.hit.header)
            return reply
        assert outcome.lease is not None  # noqa: S101 (narrows a type: an invariant of the code above, not a check of input)
        return pb.GetOrLeaseResponse(
            lease=pb.Lease(token=outcome.lease.token, expires_at=_timestamp(outcome.lease.expires_at_ms)),
            waited=outcome.waited,
        )

    async def ReleaseLease(
        self, request: pb.ReleaseLeaseRequest, context: Context
    ) -> pb.ReleaseLeaseResponse:
        """Give a lease back without a value."""
        released = await self._leases.release(request.namespace, request.key, request.lease_token)
        return pb.ReleaseLeaseResponse(released=released)


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))

"""Cache-aside through the cache service, never in the way: a short deadline per call, and after a
failure (down, timing out, or not implementing CacheService yet) calls skip the cache for a while.
State changes are logged once, not once per call; a call never fails because of the cache.
Many keys of one namespace go in one GetMany or SetMany call (one Redis round trip each)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from mediasuite.common.v1 import media_pb2
from services.processing.config import CacheSettings
from services.runtime.clients import open_channel
from services.runtime.telemetry import Telemetry
from services.runtime.tls import TlsConfig

__all__ = ["CacheClient", "Fingerprint", "NewValue", "NoCache"]

log = logging.getLogger("mediasuite.processing.cache")

# Codes that mean "the cache cannot serve now": skip it for retry_after seconds.
_TRIP = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


@dataclass(frozen=True)
class Fingerprint:
    """The source a cached value was made from."""

    path: str
    size_bytes: int
    mtime_ns: int
    content_hash: str


def _fingerprint(fingerprint: Fingerprint) -> media_pb2.SourceFingerprint:
    return media_pb2.SourceFingerprint(
        path=fingerprint.path,
        size_bytes=fingerprint.size_bytes,
        mtime_ns=fingerprint.mtime_ns,
        content_hash=fingerprint.content_hash,
    )


@dataclass(frozen=True)
class NewValue:
    """One entry of :meth:`CacheClient.set_many`."""

    key: str
    value: bytes
    fingerprint: Fingerprint | None = None


class NoCache:
    """The cache switched off: every get misses, sets do nothing."""

    async def get(self, namespace: str, key: str, fingerprint: Fingerprint | None = None) -> bytes | None:
        """Always a miss."""
        return None

    async def set(
        self, namespace: str, key: str, value: bytes, fingerprint: Fingerprint | None = None
    ) -> None:
        """Nothing stored."""

    async def get_many(
        self, namespace: str, keys: Sequence[str], fingerprints: Mapping[str, Fingerprint] | None = None
    ) -> list[bytes | None]:
        """Every key misses."""
        return [None] * len(keys)

    async def set_many(self, namespace: str, entries: Sequence[NewValue]) -> None:
        """Nothing stored."""

    async def close(self) -> None:
        """Nothing to close."""


class CacheClient:
    """Gets and sets over CacheService; misses (cheaply) whenever the cache cannot answer."""

    def __init__(
        self,
        settings: CacheSettings,
        telemetry: Telemetry | None = None,
        max_message_bytes: int = 0,
        tls: TlsConfig | None = None,
    ) -> None:
        self._settings = settings
        self._channel = open_channel(
            settings.address,
            deadline_seconds=settings.timeout_seconds,
            telemetry=telemetry,
            max_message_bytes=max_message_bytes or 64 * 1024**2,
            max_attempts=1,  # a miss is cheaper than waiting for retries
            tls=tls,
        )
        self._stub = cache_service_pb2_grpc.CacheServiceStub(self._channel)
        self._skip_until = 0.0
        self._down_reason = ""
        self.hits = 0
        self.misses = 0
        self.skipped = 0

    @property
    def available(self) -> bool:
        """False while calls skip the cache after a failure."""
        return time.monotonic() >= self._skip_until

    def _trip(self, error: grpc.aio.AioRpcError) -> None:
        code = error.code()
        if code not in _TRIP:
            log.debug("cache refused a call: %s %s", code.name, error.details())
            return
        self._skip_until = time.monotonic() + self._settings.retry_after_seconds
        reason = code.name
        if reason != self._down_reason:
            hint = (
                "it does not implement CacheService yet"
                if code == grpc.StatusCode.UNIMPLEMENTED
                else f"{code.name}: {error.details()}"
            )
            log.warning(
                "cache service at %s cannot serve (%s); results are not cached, retrying every %gs",
                self._settings.address,
                hint,
                self._settings.retry_after_seconds,
                extra={"fields": {"cache_addr": self._settings.address, "code": code.name}},
            )
            self._down_reason = reason

    def _recovered(self) -> None:
        if self._down_reason:
            log.info("cache service at %s answers again", self._settings.address)
            self._down_reason = ""

    async def get(self, namespace: str, key: str, fingerprint: Fingerprint | None = None) -> bytes | None:
        """The cached value, or None (a miss, or the cache is unavailable). With a fingerprint, an entry
        made from another version of the file is a (stale) miss."""
        if not self.available:
            self.skipped += 1
            return None
        request = cache_service_pb2.GetRequest(namespace=namespace, key=key)
        if fingerprint is not None:
            request.fingerprint.CopyFrom(_fingerprint(fingerprint))
        try:
            reply = await self._stub.Get(request, timeout=self._settings.timeout_seconds)
        except grpc.aio.AioRpcError as error:
            self._trip(error)
            return None
        self._recovered()
        if reply.found:
            self.hits += 1
            return bytes(reply.value)
        self.misses += 1
        return None

    async def set(
        self, namespace: str, key: str, value: bytes, fingerprint: Fingerprint | None = None
    ) -> None:
        """Store a value (best effort)."""
        if not self.available:
            return
        request = cache_service_pb2.SetRequest(namespace=namespace, key=key, value=value)
        if fingerprint is not None:
            request.fingerprint.CopyFrom(_fingerprint(fingerprint))
        try:
            await self._stub.Set(request, timeout=self._settings.timeout_seconds)
        except grpc.aio.AioRpcError as error:
            self._trip(error)
            return
        self._recovered()

    async def get_many(
        self, namespace: str, keys: Sequence[str], fingerprints: Mapping[str, Fingerprint] | None = None
    ) -> list[bytes | None]:
        """The cached value of each key, in order, from one GetMany call; None for a miss (absent, stale
        by its fingerprint, or the cache unavailable or refusing the call)."""
        if not keys:
            return []
        if not self.available:
            self.skipped += len(keys)
            return [None] * len(keys)
        request = cache_service_pb2.GetManyRequest(namespace=namespace, keys=keys)
        for key, fingerprint in (fingerprints or {}).items():
            request.fingerprints[key].CopyFrom(_fingerprint(fingerprint))
        try:
            reply = await self._stub.GetMany(request, timeout=self._settings.timeout_seconds)
        except grpc.aio.AioRpcError as error:
            self._trip(error)
            return [None] * len(keys)
        self._recovered()
        if len(reply.results) != len(keys):  # not what the contract promises: use none of it
            log.debug("cache GetMany answered %d results for %d keys", len(reply.results), len(keys))
            return [None] * len(keys)
        values: list[bytes | None] = [bytes(r.value) if r.found else None for r in reply.results]
        found = sum(v is not None for v in values)
        self.hits += found
        self.misses += len(values) - found
        return values

    async def set_many(self, namespace: str, entries: Sequence[NewValue]) -> None:
        """Store entries in one SetMany call (best effort)."""
        if not entries or not self.available:
            return
        request = cache_service_pb2.SetManyRequest(namespace=namespace)
        for entry in entries:
            added = request.entries.add(key=entry.key, value=entry.value)
            if entry.fingerprint is not None:
                added.fingerprint.CopyFrom(_fingerprint(entry.fingerprint))
        try:
            await self._stub.SetMany(request, timeout=self._settings.timeout_seconds)
        except grpc.aio.AioRpcError as error:
            self._trip(error)
            return
        self._recovered()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close(None)

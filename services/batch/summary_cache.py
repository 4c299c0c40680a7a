"""The collection summary in the cache service's ``collection_summary`` namespace: a short deadline,
no retries, and after a failure (down, slow, or not implementing CacheService yet) the cache is
skipped for a while; a summary is then simply computed, never refused because of the cache."""

from __future__ import annotations

import logging
import time

import grpc

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from services.runtime.clients import open_channel
from services.runtime.telemetry import Telemetry
from services.runtime.tls import TlsConfig

__all__ = ["NAMESPACE", "SummaryCacheClient"]

log = logging.getLogger("mediasuite.batch.cache")

NAMESPACE = "collection_summary"
_RETRY_AFTER_S = 5.0


class SummaryCacheClient:
    """Get, Set and Invalidate of summaries over CacheService."""

    def __init__(
        self,
        address: str,
        timeout_s: float,
        *,
        telemetry: Telemetry | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.channel = open_channel(
            address, deadline_seconds=timeout_s, telemetry=telemetry, tls=tls, max_attempts=1
        )
        self.stub = cache_service_pb2_grpc.CacheServiceStub(self.channel)
        self._skip_until = 0.0
        self._down = ""
        self.hits = 0
        self.misses = 0

    def _usable(self) -> bool:
        return time.monotonic() >= self._skip_until

    def _failed(self, error: grpc.aio.AioRpcError) -> None:
        self._skip_until = time.monotonic() + _RETRY_AFTER_S
        if error.code().name != self._down:
            log.warning(
                "cache service at %s cannot serve summaries (%s: %s); computing them without it",
                self.address,
                error.code().name,
                error.details(),
            )
            self._down = error.code().name

    def _answered(self) -> None:
        if self._down:
            log.info("cache service at %s answers again", self.address)
            self._down = ""

    async def get(self, key: str) -> bytes | None:
        """The cached summary, or None."""
        if not self._usable():
            return None
        try:
            reply = await self.stub.Get(
                cache_service_pb2.GetRequest(namespace=NAMESPACE, key=key), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as error:
            self._failed(error)
            return None
        self._answered()
        if reply.found:
            self.hits += 1
            return bytes(reply.value)
        self.misses += 1
        return None

    async def set(self, key: str, value: bytes) -> None:
        """Keep a summary (best effort)."""
        if not self._usable():
            return
        try:
            await self.stub.Set(
                cache_service_pb2.SetRequest(namespace=NAMESPACE, key=key, value=value),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            self._failed(error)
            return
        self._answered()

    async def invalidate(self, prefix: str) -> None:
        """Drop summaries under ``prefix`` (best effort)."""
        if not self._usable():
            return
        try:
            await self.stub.Invalidate(
                cache_service_pb2.InvalidateRequest(namespace=NAMESPACE, prefix=prefix),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            self._failed(error)
            return
        self._answered()

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close(None)

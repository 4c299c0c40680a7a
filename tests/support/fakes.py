"""Test servicers built on the generated bases, for testing the shared runtime (not the services).

These stand in for a service's capability where a test needs behaviour no real RPC has yet (a call
that sleeps, a call that fails a chosen way); the runtime around them is the real one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from mediasuite.processing.v1 import processing_service_pb2, processing_service_pb2_grpc
from services.runtime.errors import InvalidArgument, LimitExceeded


class SleepyCache(cache_service_pb2_grpc.CacheServiceServicer):
    """Get sleeps for float(key) seconds, then answers found=true with the key as value."""

    async def Get(self, request: cache_service_pb2.GetRequest, context: Any) -> cache_service_pb2.GetResponse:
        await asyncio.sleep(float(request.key or 0))
        return cache_service_pb2.GetResponse(found=True, value=request.key.encode())


class FailingProcessing(processing_service_pb2_grpc.ProcessingServiceServicer):
    """Each RPC fails a different way, to check how the runtime maps errors."""

    async def Probe(self, request: Any, context: Any) -> processing_service_pb2.ProbeResponse:
        raise InvalidArgument("media.path must not be empty", field="media.path")

    async def Thumbnail(self, request: Any, context: Any) -> processing_service_pb2.ThumbnailResponse:
        raise LimitExceeded(
            "max_pixels", 50_000_000, 120_000_000, env="PROCESSING_MAX_PIXELS", what="image pixels"
        )

    async def Convert(self, request: Any, context: Any) -> processing_service_pb2.ConvertResponse:
        raise ValueError("secret internal detail that must not reach the client")

    async def ExtractFrames(self, request: Any, context: Any) -> processing_service_pb2.ExtractFramesResponse:
        raise TimeoutError("decoder took longer than 30s")

"""gRPC servicers of the cache service: proto in, domain call, proto out."""

from __future__ import annotations

from mediasuite.cache.v1 import cache_service_pb2_grpc

__all__ = ["CacheServiceServicer"]


class CacheServiceServicer(cache_service_pb2_grpc.CacheServiceServicer):
    """CacheService: every RPC answers UNIMPLEMENTED until the cache capability is built."""

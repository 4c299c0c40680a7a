"""The cache process: builds its gRPC server and runs it (``mediasuite-cache``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from mediasuite.cache.v1 import cache_service_pb2_grpc
from services.cache.config import CacheConfig
from services.cache.servicer import CacheServiceServicer
from services.runtime.app import run_service
from services.runtime.server import GrpcServer, ServiceBinding
from services.runtime.suite import process
from services.runtime.telemetry import Telemetry

__all__ = ["build_server", "main"]


async def build_server(config: CacheConfig, telemetry: Telemetry) -> GrpcServer:
    """The cache server, ready to start."""
    cache = CacheServiceServicer()  # type: ignore[abstract]  # unbuilt RPCs answer UNIMPLEMENTED
    return GrpcServer(
        config.server,
        [
            ServiceBinding(
                "mediasuite.cache.v1.CacheService",
                partial(cache_service_pb2_grpc.add_CacheServiceServicer_to_server, cache),
            ),
        ],
        telemetry=telemetry,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return run_service("cache", process("cache").summary, CacheConfig.from_env, build_server, argv=argv)

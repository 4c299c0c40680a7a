"""The processing process: builds its gRPC server and runs it (``mediasuite-processing``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from mediasuite.processing.v1 import processing_service_pb2_grpc
from services.processing.cache_client import CacheClient
from services.processing.config import ProcessingConfig
from services.processing.media import MediaRoot
from services.processing.pool import WorkerPool
from services.processing.processor import Processor
from services.processing.servicer import ProcessingServiceServicer
from services.processing.store import DerivedStore
from services.runtime.app import run_service
from services.runtime.server import GrpcServer, ServiceBinding
from services.runtime.suite import process
from services.runtime.telemetry import Telemetry

__all__ = ["Parts", "build_parts", "build_server", "main"]


@dataclass(frozen=True)
class Parts:
    """The server and the pieces tests and benchmarks look at."""

    server: GrpcServer
    pool: WorkerPool
    processor: Processor


async def build_server(config: ProcessingConfig, telemetry: Telemetry) -> GrpcServer:
    """The processing server, ready to start (workers start with it, stop after it)."""
    return build_parts(config, telemetry).server


def build_parts(config: ProcessingConfig, telemetry: Telemetry) -> Parts:
    """The server with its pool and processor."""
    meter = telemetry.meter("mediasuite.processing")
    pool = WorkerPool(config.pool, meter)
    cache = (
        CacheClient(config.cache, telemetry, config.server.max_message_bytes, tls=config.server.tls)
        if config.cache.enabled
        else None
    )
    processor = Processor(
        media_root=MediaRoot(config.media_root, config.limits),
        store=DerivedStore(config.derived_root),
        runner=pool,
        cache=cache,
        limits=config.limits,
        meter=meter,
        tracer=telemetry.tracer("mediasuite.processing") if telemetry.tracing else None,
    )
    servicer = ProcessingServiceServicer(processor, config.presets, config.pool.workers)
    server = GrpcServer(
        config.server,
        [
            ServiceBinding(
                "mediasuite.processing.v1.ProcessingService",
                partial(processing_service_pb2_grpc.add_ProcessingServiceServicer_to_server, servicer),
            ),
        ],
        telemetry=telemetry,
    )
    server.on_start(pool.start)
    server.on_stop(pool.close)
    if cache is not None:
        server.on_stop(cache.close)
    return Parts(server, pool, processor)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return run_service(
        "processing", process("processing").summary, ProcessingConfig.from_env, build_server, argv=argv
    )

"""The batch process: builds its gRPC server and runs it (``mediasuite-batch``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import redis.asyncio as aioredis

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc
from services.batch.catalog_actions import CatalogWorker
from services.batch.catalog_store import CatalogStore
from services.batch.config import BatchConfig
from services.batch.importer import ImportWorker
from services.batch.journal import Journal
from services.batch.manager import BatchManager
from services.batch.messages import spec_of
from services.batch.model import BatchSpec
from services.batch.process_worker import ProcessWorker, check_operation
from services.batch.processing_client import ProcessingClient
from services.batch.runner import Deps
from services.batch.selection import MediaRoot
from services.batch.servicer import BatchServiceServicer, CatalogServiceServicer
from services.batch.slots import PrioritySlots
from services.batch.staging import Staging
from services.batch.summary import Invalidation, Summaries
from services.batch.summary_cache import SummaryCacheClient
from services.batch.work import Worker
from services.runtime.app import run_service
from services.runtime.errors import Unavailable
from services.runtime.redis_client import redis_client
from services.runtime.server import GrpcServer, ServiceBinding
from services.runtime.suite import process
from services.runtime.telemetry import Telemetry

__all__ = ["Parts", "build_parts", "build_server", "main"]


@dataclass(frozen=True)
class Parts:
    """The server and the pieces tests look at."""

    server: GrpcServer
    manager: BatchManager
    catalog: CatalogStore
    redis: aioredis.Redis


def build_parts(config: BatchConfig, telemetry: Telemetry) -> Parts:
    """The server with its manager, catalog and Redis client."""
    client = redis_client(config.redis_url, socket_timeout=30, health_check_interval=30)
    catalog = CatalogStore(client, config.key_prefix)
    journal = Journal(client, config.key_prefix, config.limits.events_kept, config.limits.retention_seconds)
    staging = Staging(config.derived_root)
    media_root = MediaRoot(config.media_root)
    processing = ProcessingClient(
        config.processing_addr,
        config.execution,
        telemetry=telemetry,
        tls=config.server.tls,
        max_message_bytes=config.server.max_message_bytes,
    )
    cache = SummaryCacheClient(
        config.cache_addr, config.cache_timeout_seconds, telemetry=telemetry, tls=config.server.tls
    )
    summaries = Summaries(catalog, cache)
    invalidation = Invalidation(summaries)
    deps = Deps(
        journal=journal,
        catalog=catalog,
        staging=staging,
        media_root=media_root,
        slots=PrioritySlots(config.execution.global_concurrency),
        execution=config.execution,
        limits=config.limits,
        on_catalog_change=invalidation.changed,
    )

    def decode(raw: bytes) -> BatchSpec:
        return spec_of(bpb.BatchSpec.FromString(raw), config.execution)

    def make_worker(spec: BatchSpec) -> Worker:
        if spec.kind == "import":
            return ImportWorker(processing, media_root, config.execution.probe_chunk, spec.importing.force)
        if spec.kind == "process":
            return ProcessWorker(processing, staging, bpb.BatchSpec.FromString(spec.raw).process)
        return CatalogWorker(spec.operation, spec.tags, spec.category, media_root.real)

    async def check(spec: BatchSpec) -> None:
        if spec.kind != "process":
            return
        operation = bpb.BatchSpec.FromString(spec.raw).process
        presets: dict[str, int] = {}
        if operation.WhichOneof("operation") == "thumbnail":
            try:
                presets = await processing.presets(spec.item_deadline_s)
            except Exception as error:
                raise Unavailable(
                    f"the processing service at {config.processing_addr} did not answer ({error}); "
                    "it names the thumbnail presets: try again when it is up"
                ) from None
        check_operation(operation, presets)

    manager = BatchManager(
        deps,
        make_worker=make_worker,
        decode_spec=decode,
        check_operation=check,
        max_listed=config.limits.max_listed,
    )
    batch = BatchServiceServicer(manager, config.execution)
    catalog_servicer = CatalogServiceServicer(catalog, summaries)
    server = GrpcServer(
        config.server,
        [
            ServiceBinding(
                "mediasuite.batch.v1.BatchService",
                partial(batch_service_pb2_grpc.add_BatchServiceServicer_to_server, batch),
            ),
            ServiceBinding(
                "mediasuite.batch.v1.CatalogService",
                partial(catalog_service_pb2_grpc.add_CatalogServiceServicer_to_server, catalog_servicer),
            ),
        ],
        telemetry=telemetry,
    )
    server.on_start(manager.start)

    async def close() -> None:
        await manager.stop()
        await invalidation.close()
        await processing.close()
        await cache.close()
        await client.aclose()

    server.on_stop(close)
    return Parts(server, manager, catalog, client)


async def build_server(config: BatchConfig, telemetry: Telemetry) -> GrpcServer:
    """The batch server, ready to start."""
    return build_parts(config, telemetry).server


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return run_service("batch", process("batch").summary, BatchConfig.from_env, build_server, argv=argv)

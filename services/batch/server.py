"""The batch process: builds its gRPC server and runs it (``mediasuite-batch``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc
from services.batch.config import BatchConfig
from services.batch.servicer import BatchServiceServicer, CatalogServiceServicer
from services.runtime.app import run_service
from services.runtime.server import GrpcServer, ServiceBinding
from services.runtime.suite import process
from services.runtime.telemetry import Telemetry

__all__ = ["build_server", "main"]


async def build_server(config: BatchConfig, telemetry: Telemetry) -> GrpcServer:
    """The batch server, ready to start."""
    batch = BatchServiceServicer()  # type: ignore[abstract]  # unbuilt RPCs answer UNIMPLEMENTED
    catalog = CatalogServiceServicer()  # type: ignore[abstract]  # unbuilt RPCs answer UNIMPLEMENTED
    return GrpcServer(
        config.server,
        [
            ServiceBinding(
                "mediasuite.batch.v1.BatchService",
                partial(batch_service_pb2_grpc.add_BatchServiceServicer_to_server, batch),
            ),
            ServiceBinding(
                "mediasuite.batch.v1.CatalogService",
                partial(catalog_service_pb2_grpc.add_CatalogServiceServicer_to_server, catalog),
            ),
        ],
        telemetry=telemetry,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return run_service("batch", process("batch").summary, BatchConfig.from_env, build_server, argv=argv)

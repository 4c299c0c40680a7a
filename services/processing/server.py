"""The processing process: builds its gRPC server and runs it (``mediasuite-processing``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from mediasuite.processing.v1 import processing_service_pb2_grpc
from services.processing.config import ProcessingConfig
from services.processing.servicer import ProcessingServiceServicer
from services.runtime.app import run_service
from services.runtime.server import GrpcServer, ServiceBinding
from services.runtime.suite import process
from services.runtime.telemetry import Telemetry

__all__ = ["build_server", "main"]


async def build_server(config: ProcessingConfig, telemetry: Telemetry) -> GrpcServer:
    """The processing server, ready to start."""
    processing = ProcessingServiceServicer()  # type: ignore[abstract]  # unbuilt RPCs answer UNIMPLEMENTED
    return GrpcServer(
        config.server,
        [
            ServiceBinding(
                "mediasuite.processing.v1.ProcessingService",
                partial(processing_service_pb2_grpc.add_ProcessingServiceServicer_to_server, processing),
            ),
        ],
        telemetry=telemetry,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return run_service(
        "processing", process("processing").summary, ProcessingConfig.from_env, build_server, argv=argv
    )

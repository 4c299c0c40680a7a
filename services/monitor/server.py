"""The monitor process: builds its gRPC server and runs it (``mediasuite-monitor``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from mediasuite.monitor.v1 import monitor_service_pb2_grpc
from services.monitor.config import MonitorConfig
from services.monitor.servicer import MonitorServiceServicer
from services.runtime.app import run_service
from services.runtime.server import GrpcServer, ServiceBinding
from services.runtime.suite import process
from services.runtime.telemetry import Telemetry

__all__ = ["build_server", "main"]


async def build_server(config: MonitorConfig, telemetry: Telemetry) -> GrpcServer:
    """The monitor server, ready to start."""
    monitor = MonitorServiceServicer()  # type: ignore[abstract]  # unbuilt RPCs answer UNIMPLEMENTED
    return GrpcServer(
        config.server,
        [
            ServiceBinding(
                "mediasuite.monitor.v1.MonitorService",
                partial(monitor_service_pb2_grpc.add_MonitorServiceServicer_to_server, monitor),
            ),
        ],
        telemetry=telemetry,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return run_service("monitor", process("monitor").summary, MonitorConfig.from_env, build_server, argv=argv)

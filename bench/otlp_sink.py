"""Benchmark helpers for the monitor: a bare OTLP sink and a bare psutil sampling loop.

    python -m bench.otlp_sink --port N          # MetricsService/Export that only decodes the request
    python -m bench.otlp_sink --psutil 5 --watch ADDR  # the same psutil reads as the monitor, every 5 s

The sink is the floor of receiving OTLP over gRPC (grpcio decodes the protobuf, nothing is kept);
the loop is the floor of sampling (the reads the monitor makes, nothing stored, no server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import grpc
import psutil
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"


async def sink(port: int) -> None:
    """Serve Export answering an empty response (the request is decoded by grpcio, then dropped)."""

    async def export(
        request: metrics_service_pb2.ExportMetricsServiceRequest, context: object
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 2**20)])
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export,
                request_deserializer=metrics_service_pb2.ExportMetricsServiceRequest.FromString,
                response_serializer=metrics_service_pb2.ExportMetricsServiceResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def psutil_loop(interval: float, pids: list[int]) -> None:
    """Read what the monitor reads every ``interval`` seconds, forever."""
    procs = [psutil.Process(pid) for pid in pids]
    procs.append(psutil.Process())
    next_tick = time.monotonic()
    while True:
        psutil.cpu_times(percpu=True)
        psutil.virtual_memory()
        psutil.swap_memory()
        psutil.disk_io_counters(perdisk=False)
        psutil.net_io_counters(pernic=False)
        os.getloadavg()
        for proc in procs:
            with proc.oneshot():
                proc.cpu_times()
                proc.memory_info()
                proc.num_fds()
        next_tick += interval
        time.sleep(max(0.0, next_tick - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int)
    parser.add_argument("--psutil", type=float, help="run the bare sampling loop at this interval")
    parser.add_argument("--pid", type=int, action="append", default=[], help="a process to read (repeat)")
    args = parser.parse_args()
    if args.psutil:
        psutil_loop(args.psutil, args.pid)
    else:
        asyncio.run(sink(args.port))


if __name__ == "__main__":
    main()

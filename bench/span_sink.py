"""A minimal OTLP/gRPC receiver for benchmarks: accepts trace and metric exports without parsing
them, so "tracing on" pays for real span export (serialization and gRPC) while the receiver costs
the shared machine as little as a remote collector would.

    python -m bench.span_sink --port N
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc

_METHODS = (
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
)


class _Accept(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """Answers every export with an empty response (an empty message is valid for both)."""

    def __init__(self) -> None:
        self._handler = grpc.unary_unary_rpc_method_handler(self._export)

    async def _export(self, request: bytes, context: Any) -> bytes:
        return b""

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self._handler if handler_call_details.method in _METHODS else None


async def serve(port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([_Accept()])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()

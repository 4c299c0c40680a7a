"""An echo server for benchmarks: CacheService.Get answers a fixed 1 KiB value.

    python -m bench.echo_server --mode bare|runtime --port N

``bare`` is grpcio alone with our server options (the floor); ``runtime`` is the same servicer
inside the suite's GrpcServer (interceptor, health, reflection): the difference is what the
shared runtime costs every call. ``echo_process`` runs it for a benchmark and ``measure_get``
measures direct Get calls to it (the figure the runtime and gateway benchmarks compare with).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Iterator
from functools import partial
from typing import Any

import grpc

from bench.load import Latency, measure_latency, measure_throughput
from bench.procs import free_port, server_process
from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from services.runtime.config import Env, ServerConfig
from services.runtime.server import GrpcServer, ServiceBinding, server_options

VALUE = bytes(range(256)) * 4  # 1 KiB


class Echo(cache_service_pb2_grpc.CacheServiceServicer):
    """Get returns the same 1 KiB value every time."""

    def __init__(self) -> None:
        self._reply = cache_service_pb2.GetResponse(found=True, value=VALUE)

    async def Get(self, request: Any, context: Any) -> cache_service_pb2.GetResponse:
        return self._reply


async def serve(mode: str, port: int) -> None:
    config = ServerConfig.from_env(Env({"ECHO_LISTEN": f"127.0.0.1:{port}"}), "echo", port)
    servicer = Echo()  # type: ignore[abstract]
    if mode == "bare":
        server = grpc.aio.server(options=server_options(config))
        cache_service_pb2_grpc.add_CacheServiceServicer_to_server(servicer, server)
        server.add_insecure_port(config.listen)
        await server.start()
        await server.wait_for_termination()
    else:
        binding = ServiceBinding(
            "mediasuite.cache.v1.CacheService",
            partial(cache_service_pb2_grpc.add_CacheServiceServicer_to_server, servicer),
        )
        runtime = GrpcServer(config, [binding])
        await runtime.start()
        await runtime.wait()


@contextlib.contextmanager
def echo_process(mode: str) -> Iterator[str]:
    """The echo server in ``mode`` in its own process until the block ends; yields its address."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    with server_process(["-m", "bench.echo_server", "--mode", mode, "--port", str(port)], address):
        yield address


async def measure_get(address: str, sequential: int, total: int, concurrency: int) -> tuple[Latency, float]:
    """Latency of ``sequential`` Get calls one at a time, and calls/s of ``total`` calls from
    ``concurrency`` callers, over one channel to the echo server at ``address``."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        request = cache_service_pb2.GetRequest(namespace="bench", key="k")

        async def call() -> object:
            reply = await stub.Get(request)
            assert reply.value == VALUE
            return reply

        latency = await measure_latency(call, sequential)
        rate = await measure_throughput(call, total, concurrency)
    return latency, rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["bare", "runtime"], required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.mode, args.port))


if __name__ == "__main__":
    main()

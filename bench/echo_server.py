"""An echo server for benchmarks: CacheService.Get answers a fixed 1 KiB value.

    python -m bench.echo_server --mode bare|runtime --port N

``bare`` is grpcio alone with our server options (the floor); ``runtime`` is the same servicer
inside the suite's GrpcServer (interceptor, health, reflection): the difference is what the
shared runtime costs every call.
"""

from __future__ import annotations

import argparse
import asyncio
from functools import partial
from typing import Any

import grpc

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

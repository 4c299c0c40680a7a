"""A server reports NOT_SERVING (also for "") until its start hooks have run, then SERVING."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.config import Env, ServerConfig
from services.runtime.server import GrpcServer


async def test_not_serving_until_the_start_hooks_finish() -> None:
    server = GrpcServer(ServerConfig.from_env(Env({"HOOKED_LISTEN": "127.0.0.1:0"}), "hooked", 0), [])
    release = asyncio.Event()
    checked = asyncio.Event()
    seen: list[int] = []

    async def slow_hook() -> None:
        async with grpc.aio.insecure_channel(server.address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            seen.append(reply.status)
        checked.set()
        await release.wait()

    server.on_start(slow_hook)
    starting = asyncio.ensure_future(server.start())
    await checked.wait()
    release.set()
    await starting
    async with grpc.aio.insecure_channel(server.address) as channel:
        after = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    await server.stop(grace=0.5)
    assert seen == [health_pb2.HealthCheckResponse.NOT_SERVING]
    assert after.status == health_pb2.HealthCheckResponse.SERVING

"""A real cache server for tests: built by the service's own build_server, on a free loopback port,
with the Redis backend (a private key prefix on the shared Redis, or a given URL) or memory only."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mediasuite.cache.v1 import cache_service_pb2_grpc
from services.cache.config import CacheConfig
from services.cache.server import REDIS_HEALTH, build_server
from services.runtime.clients import open_channel
from services.runtime.config import Env
from services.runtime.server import GrpcServer
from services.runtime.telemetry import Telemetry
from tests.support.redis import SHARED_URL, delete_prefix, unique_prefix


@dataclass
class RunningCache:
    """A cache server started by a test, and a stub to call it."""

    server: GrpcServer
    stub: cache_service_pb2_grpc.CacheServiceAsyncStub
    channel: grpc.aio.Channel
    prefix: str
    redis_url: str
    backend: str


async def _until_on_redis(channel: grpc.aio.Channel, url: str) -> None:
    """Until the cache's Redis health service says SERVING (it asks nothing of the cache itself,
    whose statistics and metrics tests read)."""
    health = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=REDIS_HEALTH)
    deadline = time.monotonic() + 20
    while (await health.Check(request)).status != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < deadline, f"the cache did not reach Redis at {url} within 20 s"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_cache(
    backend: str = "redis",
    *,
    redis_url: str = SHARED_URL,
    telemetry: Telemetry | None = None,
    env: dict[str, str] | None = None,
    on_redis: bool = True,
    **more_env: str,
) -> AsyncIterator[RunningCache]:
    """Run the cache until the block ends; its Redis keys (under a private prefix) are deleted after.

    With the Redis backend the block starts once the cache serves from Redis (``on_redis``): on a
    busy machine its first PING may go unanswered in time, and it would start on memory (a test
    of what memory does while Redis is down says ``on_redis=False``)."""
    env = {**(env or {}), **more_env}
    prefix = env.pop("CACHE_REDIS_PREFIX", "") or unique_prefix("cache")
    values = {"CACHE_LISTEN": "127.0.0.1:0", "CACHE_REDIS_PREFIX": prefix, **env}
    if backend == "redis":
        values["REDIS_URL"] = redis_url
    config = CacheConfig.from_env(Env(values))
    server = await build_server(config, telemetry or Telemetry())
    await server.start()
    channel = open_channel(server.address, deadline_seconds=30)
    try:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        if backend == "redis" and on_redis:
            await _until_on_redis(channel, redis_url)
        yield RunningCache(server, stub, channel, prefix, redis_url, backend)
    finally:
        await channel.close(None)
        await server.stop(grace=1.0)
        if backend == "redis":
            with contextlib.suppress(redis.ConnectionError):
                delete_prefix(redis_url, prefix)

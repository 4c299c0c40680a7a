"""Failover: the cache keeps answering from memory while its Redis is dead, says so, and goes back
to Redis by itself when Redis returns, carrying over what changed meanwhile.

Each test owns a private redis-server on a free port, which it kills (or freezes) and restarts.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest
import redis
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mediasuite.cache.v1 import cache_service_pb2 as pb
from services.cache.server import REDIS_HEALTH, SERVICE
from tests.support.cache import RunningCache, running_cache
from tests.support.processes import free_port
from tests.support.redis import PrivateRedis, private_redis

pytestmark = pytest.mark.fault

NS = "thumbnail"
FAST = {"CACHE_REDIS_TIMEOUT": "100ms", "CACHE_REDIS_RETRY_MIN": "50ms", "CACHE_REDIS_RETRY_MAX": "200ms"}


async def _health(cache: RunningCache, service: str) -> str:
    reply = await health_pb2_grpc.HealthStub(cache.channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def _until_recovered(cache: RunningCache, within: float = 20.0) -> pb.GetStatsResponse:
    deadline = time.monotonic() + within
    while True:
        stats = await cache.stub.GetStats(pb.GetStatsRequest(namespace=NS))
        if not stats.backend.degraded:
            return stats
        assert time.monotonic() < deadline, f"still degraded after {within}s: {stats.backend.reason}"
        await asyncio.sleep(0.05)


def _raw(server: PrivateRedis, prefix: str, key: str) -> bytes | None:
    client = redis.Redis.from_url(server.url)
    try:
        value = client.get(f"{prefix}e:{NS}:{key}")
    finally:
        client.close()
    return value  # type: ignore[return-value]


async def test_killed_redis_memory_serves_then_redis_again(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        async with running_cache("redis", redis_url=server.url, env=FAST) as cache:
            stub = cache.stub
            await stub.SetMany(
                pb.SetManyRequest(
                    namespace=NS,
                    entries=[pb.SetManyEntry(key=k, value=k.encode()) for k in ("kept", "doomed", "old")],
                )
            )
            assert await _health(cache, REDIS_HEALTH) == "SERVING"

            server.kill()
            # Every call still answers, from memory (which knows nothing from before the outage).
            miss = await stub.Get(pb.GetRequest(namespace=NS, key="kept"), timeout=5)
            assert not miss.found
            await stub.Set(pb.SetRequest(namespace=NS, key="during", value=b"written while down"), timeout=5)
            assert (
                await stub.Get(pb.GetRequest(namespace=NS, key="during"), timeout=5)
            ).value == b"written while down"
            await stub.Set(pb.SetRequest(namespace=NS, key="old", value=b"new value"), timeout=5)
            await stub.Delete(pb.DeleteRequest(namespace=NS, key="doomed"), timeout=5)
            many = await stub.GetMany(pb.GetManyRequest(namespace=NS, keys=["during", "kept"]), timeout=5)
            assert [r.found for r in many.results] == [True, False]
            await stub.Invalidate(pb.InvalidateRequest(namespace=NS, prefix="nothing-"), timeout=5)
            lease = await stub.GetOrLease(pb.GetOrLeaseRequest(namespace=NS, key="lease-me"), timeout=5)
            assert lease.WhichOneof("outcome") == "lease"

            stats = await stub.GetStats(pb.GetStatsRequest(), timeout=5)
            assert stats.backend.degraded
            assert stats.backend.active == pb.BACKEND_KIND_MEMORY
            assert stats.backend.configured == pb.BACKEND_KIND_REDIS
            assert stats.backend.failovers == 1
            assert "redis unreachable" in stats.backend.reason
            assert await _health(cache, REDIS_HEALTH) == "NOT_SERVING"
            assert await _health(cache, SERVICE) == "SERVING"

            server.start()
            stats = await _until_recovered(cache)
            assert stats.backend.active == pb.BACKEND_KIND_REDIS
            assert stats.backend.failovers == 1
            assert stats.backend.reason == ""
            assert await _health(cache, REDIS_HEALTH) == "SERVING"
            # What changed during the outage reached Redis (this Redis restarted empty, so only
            # the changes are there); what was deleted stays deleted.
            assert _raw(server, cache.prefix, "during") is not None
            assert _raw(server, cache.prefix, "old") is not None
            assert _raw(server, cache.prefix, "doomed") is None
            got = await stub.GetMany(pb.GetManyRequest(namespace=NS, keys=["during", "old", "doomed"]))
            assert [r.value for r in got.results] == [b"written while down", b"new value", b""]
            await stub.Set(pb.SetRequest(namespace=NS, key="after", value=b"back on redis"))
            assert _raw(server, cache.prefix, "after") is not None


async def test_changes_during_the_outage_replace_what_redis_still_holds(tmp_path: Path) -> None:
    """Redis froze (not crashed): it comes back with its old data, which must not win."""
    with private_redis(tmp_path) as server:
        async with running_cache("redis", redis_url=server.url, env=FAST) as cache:
            stub = cache.stub
            await stub.SetMany(
                pb.SetManyRequest(
                    namespace=NS,
                    entries=[
                        pb.SetManyEntry(key="a:1", value=b"old"),
                        pb.SetManyEntry(key="a:2", value=b"old"),
                        pb.SetManyEntry(key="b:1", value=b"old"),
                    ],
                )
            )
            assert server.popen is not None
            server.popen.send_signal(signal.SIGSTOP)
            try:
                await stub.Set(pb.SetRequest(namespace=NS, key="b:1", value=b"new"), timeout=5)
                await stub.Invalidate(pb.InvalidateRequest(namespace=NS, prefix="a:"), timeout=5)
                stats = await stub.GetStats(pb.GetStatsRequest(), timeout=5)
                assert stats.backend.degraded
                assert "Timeout" in stats.backend.reason
            finally:
                server.popen.send_signal(signal.SIGCONT)
            await _until_recovered(cache)
            got = await stub.GetMany(pb.GetManyRequest(namespace=NS, keys=["a:1", "a:2", "b:1"]))
            assert [(r.found, r.value) for r in got.results] == [(False, b""), (False, b""), (True, b"new")]


async def test_a_short_redis_pause_is_waited_out_not_failed_over(tmp_path: Path) -> None:
    """A pause a little longer than the command timeout (what a starved process or a throttled
    container also looks like) must not switch to memory: memory would miss every value and hand
    out a second lease on a key whose lease Redis still holds."""
    with private_redis(tmp_path) as server:
        async with running_cache("redis", redis_url=server.url, CACHE_REDIS_TIMEOUT="300ms") as cache:
            stub = cache.stub
            await stub.SetMany(
                pb.SetManyRequest(
                    namespace=NS,
                    entries=[pb.SetManyEntry(key=k, value=b"in redis") for k in ("kept", "gone")],
                )
            )
            held = await stub.GetOrLease(pb.GetOrLeaseRequest(namespace=NS, key="computing"))
            assert held.WhichOneof("outcome") == "lease"
            assert server.popen is not None
            server.popen.send_signal(signal.SIGSTOP)
            # Resumed after 0.4 s (longer than the timeout, shorter than twice it) by a thread, so a
            # busy event loop here cannot stretch the pause.
            threading.Timer(0.4, server.popen.send_signal, (signal.SIGCONT,)).start()
            deleted, got, second = await asyncio.gather(
                stub.Delete(pb.DeleteRequest(namespace=NS, key="gone"), timeout=5),
                stub.Get(pb.GetRequest(namespace=NS, key="kept"), timeout=5),
                stub.GetOrLease(
                    pb.GetOrLeaseRequest(namespace=NS, key="computing", wait_timeout=Duration(seconds=1)),
                    timeout=5,
                ),
                return_exceptions=True,
            )
            stats = await stub.GetStats(pb.GetStatsRequest())
            assert (stats.backend.degraded, stats.backend.failovers) == (False, 0), stats.backend.reason
            # The delete happened (its reply may say deleted=false: the answer to its first
            # attempt was lost to the timeout, and the repeat found nothing left to delete).
            assert isinstance(deleted, pb.DeleteResponse)
            assert isinstance(got, pb.GetResponse)
            assert (got.found, got.value) == (True, b"in redis")
            # The second caller waited for the lease holder instead of taking a lease of its own.
            assert isinstance(second, grpc.aio.AioRpcError)
            assert second.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "still computing under a lease" in (second.details() or "")
            assert _raw(server, cache.prefix, "gone") is None


async def test_starting_without_redis_serves_memory_until_redis_appears(tmp_path: Path) -> None:
    server = PrivateRedis(free_port(), tmp_path)
    async with running_cache("redis", redis_url=server.url, env=FAST, on_redis=False) as cache:
        stats = await cache.stub.GetStats(pb.GetStatsRequest())
        assert stats.backend.degraded
        await cache.stub.Set(pb.SetRequest(namespace=NS, key="k", value=b"v"))
        assert (await cache.stub.Get(pb.GetRequest(namespace=NS, key="k"))).found
        server.start()
        try:
            await _until_recovered(cache)
            assert _raw(server, cache.prefix, "k") is not None
        finally:
            server.kill()


async def test_redis_restarted_between_two_calls_is_not_a_failover(tmp_path: Path) -> None:
    """The connections pooled before the restart are dead; the first calls after it must reach the
    new Redis (which kept its data: append-only file), not switch to an empty memory."""
    with private_redis(tmp_path, persistent=True) as server:
        async with running_cache("redis", redis_url=server.url, env=FAST) as cache:
            stub = cache.stub
            keys = [f"k{i}" for i in range(8)]
            await asyncio.gather(
                *(stub.Set(pb.SetRequest(namespace=NS, key=k, value=k.encode())) for k in keys)
            )
            await asyncio.to_thread(server.restart)
            got = await asyncio.gather(
                *(stub.Get(pb.GetRequest(namespace=NS, key=k), timeout=5) for k in keys)
            )
            assert [g.value for g in got] == [k.encode() for k in keys]
            stats = await stub.GetStats(pb.GetStatsRequest())
            assert (stats.backend.degraded, stats.backend.failovers) == (False, 0), stats.backend.reason


async def test_a_redis_slow_to_answer_at_start_is_waited_out(tmp_path: Path) -> None:
    """The first PING at start is confirmed like any call: a Redis paused a little longer than the
    timeout (or a start on a busy machine) does not start the cache on memory."""
    with private_redis(tmp_path) as server:
        assert server.popen is not None
        server.popen.send_signal(signal.SIGSTOP)
        threading.Timer(0.4, server.popen.send_signal, (signal.SIGCONT,)).start()
        async with running_cache(
            "redis", redis_url=server.url, CACHE_REDIS_TIMEOUT="300ms", on_redis=False
        ) as cache:
            stats = await cache.stub.GetStats(pb.GetStatsRequest())
            assert (stats.backend.degraded, stats.backend.failovers) == (False, 0), stats.backend.reason

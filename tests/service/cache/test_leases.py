"""Stampede protection: many concurrent misses on one key, exactly one caller computes it."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import duration_pb2

from mediasuite.cache.v1 import cache_service_pb2 as pb
from mediasuite.cache.v1 import cache_service_pb2_grpc
from tests.support.cache import RunningCache, running_cache

NS = "quality_analysis"


async def _call(
    stub: cache_service_pb2_grpc.CacheServiceAsyncStub, request: pb.GetOrLeaseRequest
) -> pb.GetOrLeaseResponse:
    return await stub.GetOrLease(request)


def _seconds(value: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(value * 1e9))
    return d


async def _first_lease(
    tasks: list[asyncio.Task[pb.GetOrLeaseResponse]],
) -> asyncio.Task[pb.GetOrLeaseResponse]:
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            assert task.result().WhichOneof("outcome") == "lease", "nobody may get a value before it is set"
            return task
    raise AssertionError("no caller got the lease")


async def _until_in_flight(cache: RunningCache, calls: int) -> None:
    """Wait (up to 20 s) until the server has ``calls`` unary calls in flight."""
    async with asyncio.timeout(20):
        while True:
            if cache.server.tracker.count >= calls:
                return
            await asyncio.sleep(0.01)


async def test_fifty_concurrent_misses_one_lease_fortynine_values(cache: RunningCache) -> None:
    request = pb.GetOrLeaseRequest(
        namespace=NS, key="photo:42", wait_timeout=_seconds(20), lease_ttl=_seconds(20)
    )
    tasks = [asyncio.create_task(_call(cache.stub, request)) for _ in range(50)]
    holder = await _first_lease(tasks)
    # Set only once the other 49 calls are in the server, waiting (on a busy machine some reach it
    # late; one that came after the Set would rightly get the value without waiting).
    await _until_in_flight(cache, 49)
    await asyncio.sleep(0.05)
    assert sum(t.done() for t in tasks) == 1
    token = holder.result().lease.token
    await cache.stub.Set(pb.SetRequest(namespace=NS, key="photo:42", value=b"score=87", lease_token=token))
    replies = await asyncio.gather(*tasks)
    outcomes = [r.WhichOneof("outcome") for r in replies]
    assert outcomes.count("lease") == 1
    assert outcomes.count("value") == 49
    assert {r.value for r in replies if r.WhichOneof("outcome") == "value"} == {b"score=87"}
    assert all(r.waited for r in replies if r.WhichOneof("outcome") == "value")
    # The lease is gone with the Set: the next caller simply gets the value.
    again = await cache.stub.GetOrLease(pb.GetOrLeaseRequest(namespace=NS, key="photo:42"))
    assert (again.value, again.waited) == (b"score=87", False)
    stats = await cache.stub.GetStats(pb.GetStatsRequest(namespace=NS))
    assert (stats.namespaces[0].hits, stats.namespaces[0].misses) == (50, 1)


async def test_a_released_lease_is_taken_over_by_a_waiter(cache: RunningCache) -> None:
    first = await cache.stub.GetOrLease(pb.GetOrLeaseRequest(namespace=NS, key="k"))
    assert first.WhichOneof("outcome") == "lease"
    waiter = asyncio.create_task(
        _call(cache.stub, pb.GetOrLeaseRequest(namespace=NS, key="k", wait_timeout=_seconds(10)))
    )
    await asyncio.sleep(0.1)
    assert not waiter.done()
    released = await cache.stub.ReleaseLease(
        pb.ReleaseLeaseRequest(namespace=NS, key="k", lease_token=first.lease.token)
    )
    assert released.released
    second = await waiter
    assert second.WhichOneof("outcome") == "lease"
    assert second.waited
    assert second.lease.token != first.lease.token
    # The first token no longer holds anything.
    stale = await cache.stub.ReleaseLease(
        pb.ReleaseLeaseRequest(namespace=NS, key="k", lease_token=first.lease.token)
    )
    assert not stale.released


async def test_a_lapsed_lease_is_taken_over(cache: RunningCache) -> None:
    first = await cache.stub.GetOrLease(
        pb.GetOrLeaseRequest(namespace=NS, key="lapse", lease_ttl=_seconds(0.3))
    )
    assert first.WhichOneof("outcome") == "lease"
    second = await cache.stub.GetOrLease(
        pb.GetOrLeaseRequest(namespace=NS, key="lapse", wait_timeout=_seconds(10))
    )
    assert second.WhichOneof("outcome") == "lease"
    assert second.waited


async def test_a_waiter_out_of_time_is_told_so(cache: RunningCache) -> None:
    await cache.stub.GetOrLease(pb.GetOrLeaseRequest(namespace=NS, key="slow", lease_ttl=_seconds(30)))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cache.stub.GetOrLease(
            pb.GetOrLeaseRequest(namespace=NS, key="slow", wait_timeout=_seconds(0.2))
        )
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "another caller is still computing under a lease" in (caught.value.details() or "")
    # The caller's own deadline bounds the wait too, and the answer comes before it.
    with pytest.raises(grpc.aio.AioRpcError) as bounded:
        await cache.stub.GetOrLease(
            pb.GetOrLeaseRequest(namespace=NS, key="slow", wait_timeout=_seconds(30)), timeout=1.0
        )
    assert "another caller is still computing" in (bounded.value.details() or "")


async def test_waiters_on_another_replica_receive_the_value(redis_cache: RunningCache) -> None:
    async with running_cache("redis", CACHE_REDIS_PREFIX=redis_cache.prefix) as other:
        first = await redis_cache.stub.GetOrLease(pb.GetOrLeaseRequest(namespace=NS, key="shared"))
        assert first.WhichOneof("outcome") == "lease"
        waiter = asyncio.create_task(
            _call(other.stub, pb.GetOrLeaseRequest(namespace=NS, key="shared", wait_timeout=_seconds(10)))
        )
        await asyncio.sleep(0.1)
        await redis_cache.stub.Set(
            pb.SetRequest(namespace=NS, key="shared", value=b"v", lease_token=first.lease.token)
        )
        reply = await waiter
    assert (reply.value, reply.waited) == (b"v", True)

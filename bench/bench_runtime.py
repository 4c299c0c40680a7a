"""What the shared runtime costs a call: our GrpcServer against bare grpcio, same servicer, same options.

Anchor: a bare ``grpc.aio`` server answering a 1 KiB CacheService.Get. Ours: the same servicer in
the suite's GrpcServer (error/metrics interceptor, health, reflection). The client is this
process; each server runs in its own process.
"""

from __future__ import annotations

import asyncio

import grpc

from bench.echo_server import VALUE
from bench.load import Latency, measure_latency, measure_throughput
from bench.procs import free_port, server_process
from bench.report import Row, ratio_row
from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc

SEQUENTIAL_CALLS = 3000
CONCURRENT_CALLS = 20000
CONCURRENCY = 64


async def _measure(address: str) -> tuple[Latency, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        request = cache_service_pb2.GetRequest(namespace="bench", key="k")

        async def call() -> object:
            reply = await stub.Get(request)
            assert reply.value == VALUE
            return reply

        latency = await measure_latency(call, SEQUENTIAL_CALLS)
        rate = await measure_throughput(call, CONCURRENT_CALLS, CONCURRENCY)
    return latency, rate


def _run_mode(mode: str) -> tuple[Latency, float]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    with server_process(["-m", "bench.echo_server", "--mode", mode, "--port", str(port)], address):
        return asyncio.run(_measure(address))


def run() -> list[Row]:
    """Measure bare and runtime servers; return the rows."""
    bare_latency, bare_rate = _run_mode("bare")
    ours_latency, ours_rate = _run_mode("runtime")
    added = ours_latency.p50_ms - bare_latency.p50_ms
    return [
        ratio_row(
            "runtime: unary 1 KiB, 64 callers",
            ours_rate,
            bare_rate,
            "calls/s",
            goal_ratio=0.9,
            anchor_name="bare grpcio",
        ),
        ratio_row(
            "runtime: unary 1 KiB p50, 1 caller",
            ours_latency.p50_ms,
            bare_latency.p50_ms,
            "ms",
            goal_ratio=1.1,
            higher_is_better=False,
            anchor_name="bare grpcio",
            note=f"p50 added by the runtime: {added * 1000:+.0f} us; p99 ours {ours_latency.p99_ms:.3f} ms "
            f"vs {bare_latency.p99_ms:.3f} ms",
        ),
    ]

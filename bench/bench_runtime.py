"""What the shared runtime costs a call: our GrpcServer against bare grpcio, same servicer, same options.

Anchor: a bare ``grpc.aio`` server answering a 1 KiB CacheService.Get. Ours: the same servicer in
the suite's GrpcServer (error/metrics interceptor, health, reflection). The client is this
process; each server runs in its own process.
"""

from __future__ import annotations

import asyncio

from bench.echo_server import echo_process, measure_get
from bench.load import Latency
from bench.report import Row, ratio_row

SEQUENTIAL_CALLS = 3000
CONCURRENT_CALLS = 20000
CONCURRENCY = 64


def _run_mode(mode: str) -> tuple[Latency, float]:
    with echo_process(mode) as address:
        return asyncio.run(measure_get(address, SEQUENTIAL_CALLS, CONCURRENT_CALLS, CONCURRENCY))


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

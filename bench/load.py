"""Load generators shared by the benchmarks: latency one call at a time, throughput with N callers."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Latency", "measure_latency", "measure_throughput", "percentile"]

Call = Callable[[], Awaitable[object]]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass(frozen=True)
class Latency:
    """Latency figures of sequential calls, in milliseconds."""

    p50_ms: float
    p99_ms: float
    mean_ms: float


async def measure_latency(call: Call, count: int, warmup: int = 200) -> Latency:
    """Call one at a time; return p50/p99/mean in ms."""
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return Latency(percentile(samples, 50), percentile(samples, 99), statistics.fmean(samples))


async def measure_throughput(call: Call, total: int, concurrency: int = 64, warmup: int = 500) -> float:
    """Run ``total`` calls from ``concurrency`` callers; return calls per second."""
    for _ in range(warmup // concurrency + 1):
        await asyncio.gather(*(call() for _ in range(concurrency)))
    remaining = total

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)

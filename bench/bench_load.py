"""Load on the whole suite, bounded and on loopback only: 100,000 cache calls from 64 concurrent
callers, then 10,000 HTTP requests through the gateway at 64 concurrency (spread over routes that
reach cache, batch, monitor and processing). The goal is zero errors, and no growth of any
process's resident memory beyond ``RSS_BOUND_MIB`` between a sample taken after a warm-up and one
taken after the load.

The five processes are the real console scripts, each in its own process, on free ports, with
the cache and batch on the shared Redis under a private key prefix (deleted afterwards). The
gateway's per-caller rate limit is off here: every request comes from one address, and the
default (1,000/s, bursts of 2,000) would answer part of them 429 by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import psutil
import redis

from bench.http_client import HttpConnection
from bench.procs import free_port
from bench.report import Row
from mediasuite.cache.v1 import cache_service_pb2 as cpb
from mediasuite.cache.v1 import cache_service_pb2_grpc
from services.cli.probe import check_health
from services.runtime.suite import PROCESSES

__all__ = ["CACHE_CALLS", "GATEWAY_REQUESTS", "RSS_BOUND_MIB", "run", "run_load"]

CACHE_CALLS = 100_000
GATEWAY_REQUESTS = 10_000
CONCURRENCY = 64
RSS_BOUND_MIB = 32.0
REDIS_URL = "redis://127.0.0.1:6379/0"
KEYS = 1000
VALUE = os.urandom(1024)
_MODULES = {p.name: f"mediasuite-{p.name}" for p in PROCESSES}


class Suite:
    """The five processes: their pids, addresses and the gateway's HTTP port."""

    def __init__(self) -> None:
        self.addresses = {p.name: f"127.0.0.1:{free_port()}" for p in PROCESSES}
        self.http_port = free_port()
        self.prefix = f"msbench:load:{uuid.uuid4().hex[:8]}:"
        self.popens: dict[str, subprocess.Popen[bytes]] = {}
        self.state = Path(".bench/load")

    def env(self) -> dict[str, str]:
        """The environment of every process."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRPC_TLS_"))}
        for proc in PROCESSES:
            env[proc.listen_env] = self.addresses[proc.name]
            env[proc.addr_env] = self.addresses[proc.name]
        media = self.state / "media"
        media.mkdir(parents=True, exist_ok=True)
        env.update(
            GATEWAY_HTTP_LISTEN=f"127.0.0.1:{self.http_port}",
            GATEWAY_RATE_LIMIT="0",
            MONITOR_HTTP_LISTEN=f"127.0.0.1:{free_port()}",
            REDIS_URL=REDIS_URL,
            CACHE_REDIS_PREFIX=f"{self.prefix}cache:",
            BATCH_KEY_PREFIX=f"{self.prefix}batch:",
            PROCESSING_MEDIA_ROOT=str(media),
            BATCH_MEDIA_ROOT=str(media),
            PROCESSING_DERIVED_ROOT=str(self.state / "derived"),
            BATCH_DERIVED_ROOT=str(self.state / "derived"),
            PROCESSING_WORKERS="1",
            LOG_LEVEL="warning",
        )
        return env

    @contextlib.contextmanager
    def running(self) -> Iterator[Suite]:
        """Start every process, wait until each is SERVING, stop them all at the end."""
        env = self.env()
        try:
            for proc in PROCESSES:
                script = Path(sys.executable).parent / _MODULES[proc.name]
                self.popens[proc.name] = subprocess.Popen([str(script)], env=env)
            for name, address in self.addresses.items():
                deadline = time.monotonic() + 60
                while not asyncio.run(check_health(address, deadline_s=0.5))[0].serving:
                    if self.popens[name].poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not start")
                    time.sleep(0.1)
            yield self
        finally:
            for popen in self.popens.values():
                popen.terminate()
            for popen in self.popens.values():
                popen.wait(30)
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of each process (MiB), processing's worker processes included."""
        sizes = {}
        for name, popen in self.popens.items():
            process = psutil.Process(popen.pid)
            total = process.memory_info().rss
            if name == "processing":
                total += sum(c.memory_info().rss for c in process.children(recursive=True))
            sizes[name] = total / 1024**2
        return sizes


async def _spread(calls: int, concurrency: int, call: Callable[[int], Awaitable[bool]]) -> tuple[float, int]:
    """``calls`` calls from ``concurrency`` callers; (calls per second, errors)."""
    next_index = 0
    errors = 0

    async def caller() -> None:
        nonlocal next_index, errors
        while next_index < calls:
            index = next_index
            next_index += 1
            if not await call(index):
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return calls / (time.perf_counter() - started), errors


async def _cache_load(address: str, calls: int) -> tuple[float, int]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)

        async def call(index: int) -> bool:
            key = f"k{index % KEYS}"
            try:
                if index % 4 == 0:
                    await stub.Set(cpb.SetRequest(namespace="thumbnail", key=key, value=VALUE), timeout=10)
                else:
                    await stub.Get(cpb.GetRequest(namespace="thumbnail", key=key), timeout=10)
            except grpc.aio.AioRpcError:
                return False
            return True

        return await _spread(calls, CONCURRENCY, call)


ROUTES = (
    "/v1/cache/namespaces/thumbnail/entries/k1",  # gateway -> cache
    "/v1/batches?pageSize=5",  # gateway -> batch -> Redis
    "/v1/catalog/summary",  # gateway -> batch (-> cache)
    "/v1/monitor/metrics:current?prefix=system.cpu",  # gateway -> monitor
    "/v1/processing/capabilities",  # gateway -> processing
)


async def _gateway_load(port: int, requests: int) -> tuple[float, int]:
    connections = [await HttpConnection.open("127.0.0.1", port) for _ in range(CONCURRENCY)]
    free = list(connections)

    async def call(index: int) -> bool:
        connection = free.pop()
        try:
            status, _ = await connection.get(ROUTES[index % len(ROUTES)])
        except (OSError, asyncio.IncompleteReadError, ValueError):
            return False
        finally:
            free.append(connection)
        return status == 200

    try:
        return await _spread(requests, CONCURRENCY, call)
    finally:
        for connection in connections:
            await connection.close()


def run_load(cache_calls: int, gateway_requests: int) -> dict[str, object]:
    """Run the load on a fresh suite; rates, errors and RSS before and after."""
    with Suite().running() as suite:
        # Warm-up: every route and the cache once, so lazily made channels and caches count as "before".
        asyncio.run(_cache_load(suite.addresses["cache"], 2000))
        asyncio.run(_gateway_load(suite.http_port, 1000))
        before = suite.rss_mib()
        cache_rate, cache_errors = asyncio.run(_cache_load(suite.addresses["cache"], cache_calls))
        gateway_rate, gateway_errors = asyncio.run(_gateway_load(suite.http_port, gateway_requests))
        after = suite.rss_mib()
    return {
        "cache_rate": cache_rate,
        "cache_errors": cache_errors,
        "gateway_rate": gateway_rate,
        "gateway_errors": gateway_errors,
        "before": before,
        "after": after,
    }


def run() -> list[Row]:
    """The load figures: throughput with its error count, and each process's RSS growth."""
    result = run_load(CACHE_CALLS, GATEWAY_REQUESTS)
    rows = []
    for label, rate_key, errors_key, count in (
        (
            f"load: cache Set/Get, {CACHE_CALLS:,} calls, 64 callers (calls/s)",
            "cache_rate",
            "cache_errors",
            CACHE_CALLS,
        ),
        (
            f"load: gateway, {GATEWAY_REQUESTS:,} requests over 5 routes, 64 callers (req/s)",
            "gateway_rate",
            "gateway_errors",
            GATEWAY_REQUESTS,
        ),
    ):
        errors = int(result[errors_key])  # type: ignore[call-overload]
        rate = float(result[rate_key])  # type: ignore[arg-type]
        rows.append(
            Row(label, rate, 0.0, 0.0, "", "0 errors", errors == 0, "errors", f"{errors} of {count:,} failed")
        )
    before: dict[str, float] = result["before"]  # type: ignore[assignment]
    after: dict[str, float] = result["after"]  # type: ignore[assignment]
    for name, size in before.items():
        growth = after[name] - size
        rows.append(
            Row(
                f"load: RSS growth of {name} over the load (MiB)",
                growth,
                RSS_BOUND_MIB,
                growth / RSS_BOUND_MIB,
                "MiB",
                f"< {RSS_BOUND_MIB:g} MiB",
                growth < RSS_BOUND_MIB,
                "the bound",
                f"{size:.1f} -> {after[name]:.1f} MiB",
            )
        )
    return rows

"""What the HTTP gateway adds to a call: GET /v1/cache/namespaces/bench/entries/k through the
gateway against the same CacheService.Get made directly over gRPC, in the same run.

Both go to one echo server (bench/echo_server.py, the runtime's server answering a fixed 1 KiB
value) in its own process; the gateway is the real ``mediasuite-gateway`` process in front of
it. The client is this process: a grpc.aio stub for the direct call, a minimal keep-alive
HTTP/1.1 client (bench/http_client.py) for the gateway, so that client costs stay small and
alike. Latency is one call at a time; throughput is 64 concurrent callers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.echo_server import VALUE, echo_process, measure_get
from bench.http_client import HttpConnection
from bench.load import Latency, measure_latency, measure_throughput
from bench.procs import free_port
from bench.report import Row, ratio_row

SEQUENTIAL_CALLS = 3000
CONCURRENT_CALLS = 20000
CONCURRENCY = 64
PATH = "/v1/cache/namespaces/bench/entries/k"
GOAL_ADDED_MS = 1.0


@contextlib.contextmanager
def gateway_process(cache_address: str) -> Iterator[int]:
    """The real gateway process in front of ``cache_address``; yields its HTTP port."""
    http_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "GATEWAY_LISTEN": f"127.0.0.1:{free_port()}",
        "GATEWAY_HTTP_LISTEN": f"127.0.0.1:{http_port}",
        "CACHE_ADDR": cache_address,
        "LOG_LEVEL": "warning",
        # One client address makes every request: the per-address limit (1,000/s by default) would
        # answer 429 to the bench itself, and the figure is the transcoding, not the limiter.
        "GATEWAY_RATE_LIMIT": "0",
    }
    script = Path(sys.executable).parent / "mediasuite-gateway"
    popen = subprocess.Popen([str(script)], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                asyncio.run(_probe(http_port))
                break
            except OSError:
                if popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start") from None
                time.sleep(0.1)
        yield http_port
    finally:
        popen.terminate()
        popen.wait(20)


async def _probe(port: int) -> None:
    connection = await HttpConnection.open("127.0.0.1", port)
    try:
        status, _ = await connection.get("/healthz")
        if status != 200:
            raise OSError(f"healthz answered {status}")
    finally:
        await connection.close()


async def _through_gateway(port: int) -> tuple[Latency, float]:
    single = await HttpConnection.open("127.0.0.1", port)
    status, body = await single.get(PATH)
    assert status == 200, body
    assert base64.b64decode(json.loads(body)["value"]) == VALUE

    async def call() -> object:
        status, _ = await single.get(PATH)
        assert status == 200
        return status

    latency = await measure_latency(call, SEQUENTIAL_CALLS)
    await single.close()

    pool = [await HttpConnection.open("127.0.0.1", port) for _ in range(CONCURRENCY)]
    idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for connection in pool:
        idle.put_nowait(connection)

    async def pooled() -> object:
        connection = await idle.get()
        try:
            status, _ = await connection.get(PATH)
            assert status == 200
            return status
        finally:
            idle.put_nowait(connection)

    rate = await measure_throughput(pooled, CONCURRENT_CALLS, CONCURRENCY)
    for connection in pool:
        await connection.close()
    return latency, rate


def run() -> list[Row]:
    """Measure direct gRPC and the gateway against one echo server; return the rows."""
    with echo_process("runtime") as address:
        with gateway_process(address) as http_port:
            gateway_latency, gateway_rate = asyncio.run(_through_gateway(http_port))
        direct_latency, direct_rate = asyncio.run(
            measure_get(address, SEQUENTIAL_CALLS, CONCURRENT_CALLS, CONCURRENCY)
        )
    added = gateway_latency.p50_ms - direct_latency.p50_ms
    added_p99 = gateway_latency.p99_ms - direct_latency.p99_ms
    return [
        Row(
            "gateway: GET 1 KiB p50, 1 caller",
            gateway_latency.p50_ms,
            direct_latency.p50_ms,
            gateway_latency.p50_ms / direct_latency.p50_ms,
            "ms",
            f"<= +{GOAL_ADDED_MS:g} ms",
            added <= GOAL_ADDED_MS,
            "direct gRPC",
            f"added at p50: {added * 1000:+.0f} us; p99 {gateway_latency.p99_ms:.3f} ms vs "
            f"{direct_latency.p99_ms:.3f} ms (added {added_p99 * 1000:+.0f} us)",
        ),
        ratio_row(
            "gateway: GET 1 KiB, 64 callers",
            gateway_rate,
            direct_rate,
            "req/s",
            goal_ratio=None,
            anchor_name="direct gRPC",
            note="one gateway process (one core) in front of one echo server; the client shares the machine",
        ),
    ]

"""The cache service against its floor and its anchor, in one run, on 1 KiB values.

- floor: a bare grpcio echo service (``bench/echo_server.py --mode bare``, our server options)
  answering CacheService.Get with a fixed 1 KiB value;
- ours: CacheService Get and Set through gRPC, the Redis backend and the memory backend, each
  server in its own process (``python -m services.cache``);
- anchor: redis-py (asyncio, hiredis) GET/SET/MGET straight against the same Redis;
- sequential calls (p50/p99) and 64 concurrent callers (ops/s); GetMany of 100 keys against one
  MGET of 100 keys; and Get with tracing on (spans exported over OTLP to ``bench/span_sink.py``),
  every span kept and 10% sampled;
- the codec measurement behind CACHE_CODEC's default (zstd vs lz4 vs zlib on the suite's values).

When a goal is missed, the cache server is profiled (cProfile) under the same load and the top
functions are printed and written to .bench/cache_profile.txt.
"""

from __future__ import annotations

import asyncio
import json
import os
import pstats
import random
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import lz4.frame
import psutil
import redis.asyncio as aioredis
import zstandard

from bench.echo_server import VALUE
from bench.load import Latency, measure_latency, measure_throughput
from bench.procs import free_port, server_process
from bench.report import Row, ratio_row
from mediasuite.cache.v1 import cache_service_pb2 as pb
from mediasuite.cache.v1 import cache_service_pb2_grpc
from services.runtime.clients import channel_options
from tests.support.redis import SHARED_URL, delete_prefix, unique_prefix

ROUNDS = 3
SEQUENTIAL = 1000
CONCURRENT = 8000
CONCURRENCY = 64
MANY_KEYS = 100
MANY_CALLS_SEQ = 200
MANY_CALLS_CONC = 800
MANY_CONCURRENCY = 8
NS = "thumbnail"
PROFILE_OUT = Path(".bench/cache_profile.txt")

Call = Callable[[], Awaitable[object]]


@dataclass
class Figures:
    """What one configuration measured."""

    get_latency: Latency | None = None
    get_rate: float = 0.0
    set_latency: Latency | None = None
    set_rate: float = 0.0
    many_seq_keys: float = 0.0
    many_conc_keys: float = 0.0
    get_cpu_us: float = float("inf")


# -- codec measurement ------------------------------------------------------------------------


def _samples() -> dict[str, bytes]:
    rng = random.Random(7)  # noqa: S311 (reproducible test data, not crypto)

    def exif() -> dict[str, object]:
        return {
            f"Tag{i:03d}": rng.choice(["Canon", "EOS R5", 1.8, 250, "2023:07:01 12:00:00", rng.random()])
            for i in range(60)
        }

    metadata = json.dumps(
        {"path": "albums/2023/IMG_0001.jpg", "width": 8192, "height": 5464, "format": "JPEG", "exif": exif()}
    ).encode()
    analysis = json.dumps(
        {
            "scores": {
                k: round(rng.random(), 4) for k in ("sharpness", "exposure", "contrast", "noise", "artifacts")
            },
            "histogram": [rng.randint(0, 9000) for _ in range(256)],
            "issues": [{"name": "noise", "severity": "warning", "detail": "ISO 6400 grain in shadows"}] * 3,
        }
    ).encode()
    summary = "\n".join(
        f"{i:05d} albums/2023/IMG_{i:04d}.jpg approved landscape 8192x5464 {rng.randint(10**6, 9 * 10**6)}"
        for i in range(120)
    ).encode()
    return {
        "metadata JSON": metadata,
        "analysis JSON": analysis,
        "collection summary": summary,
        "JPEG-like": os.urandom(16384),
    }


def _codec_rows() -> list[Row]:
    zc, zd = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    codecs: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
        "zstd-3": (zc.compress, zd.decompress),
        "lz4": (lambda b: bytes(lz4.frame.compress(b)), lambda b: bytes(lz4.frame.decompress(b))),
        "zlib-6": (lambda b: zlib.compress(b, 6), zlib.decompress),
    }
    samples = _samples()
    text = {k: v for k, v in samples.items() if k != "JPEG-like"}
    results: dict[str, dict[str, float]] = {}
    for name, (compress, decompress) in codecs.items():
        raw = stored = 0
        c_time = d_time = 0.0
        for data in text.values():
            packed = compress(data)
            raw += len(data)
            stored += len(packed)
            rounds = 300
            started = time.perf_counter()
            for _ in range(rounds):
                compress(data)
            c_time += (time.perf_counter() - started) / rounds
            started = time.perf_counter()
            for _ in range(rounds):
                decompress(packed)
            d_time += (time.perf_counter() - started) / rounds
        jpeg = samples["JPEG-like"]
        results[name] = {
            "ratio": raw / stored,
            "compress_mbs": raw / c_time / 1e6,
            "decompress_mbs": raw / d_time / 1e6,
            "jpeg_ratio": len(jpeg) / len(compress(jpeg)),
        }
    anchor = results["zlib-6"]
    rows = []
    for name in ("zstd-3", "lz4"):
        r = results[name]
        note = (
            f"on {', '.join(text)} ({sum(map(len, text.values()))} bytes); "
            f"JPEG-like bytes ratio {r['jpeg_ratio']:.3f} (zlib {anchor['jpeg_ratio']:.3f}): stored raw"
        )
        rows.append(
            ratio_row(
                f"cache codec {name}: ratio",
                r["ratio"],
                anchor["ratio"],
                "x",
                goal_ratio=None,
                anchor_name="zlib-6",
                note=note,
            )
        )
        rows.append(
            ratio_row(
                f"cache codec {name}: compress",
                r["compress_mbs"],
                anchor["compress_mbs"],
                "MB/s",
                goal_ratio=None,
                anchor_name="zlib-6",
            )
        )
        rows.append(
            ratio_row(
                f"cache codec {name}: decompress",
                r["decompress_mbs"],
                anchor["decompress_mbs"],
                "MB/s",
                goal_ratio=None,
                anchor_name="zlib-6",
            )
        )
    return rows


# -- load over gRPC and redis-py -----------------------------------------------------------------


@dataclass
class Server:
    """A benchmark server process, its address and its process (for CPU accounting)."""

    name: str
    address: str
    process: psutil.Process
    cache: bool


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _rate_sequential(call: Call, count: int) -> float:
    for _ in range(20):
        await call()
    started = time.perf_counter()
    for _ in range(count):
        await call()
    return count / (time.perf_counter() - started)


async def _measure_get(server: Server, figures: Figures) -> None:
    """One round of Get: sequential latency, then 64 callers (keeping the best of the rounds)."""
    async with grpc.aio.insecure_channel(server.address, options=channel_options(64 * 1024**2)) as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        request = pb.GetRequest(namespace=NS, key="bench:hot")
        if server.cache:
            await stub.Set(pb.SetRequest(namespace=NS, key="bench:hot", value=VALUE))

        async def get() -> object:
            reply = await stub.Get(request)
            assert reply.value == VALUE
            return reply

        latency = await measure_latency(get, SEQUENTIAL)
        if figures.get_latency is None or latency.p50_ms < figures.get_latency.p50_ms:
            figures.get_latency = latency
        before = _cpu(server.process)
        rate = await measure_throughput(get, CONCURRENT, CONCURRENCY)
        cpu_us = (_cpu(server.process) - before) / CONCURRENT * 1e6
        figures.get_rate = max(figures.get_rate, rate)
        figures.get_cpu_us = min(figures.get_cpu_us, cpu_us)


async def _measure_set_and_many(server: Server, figures: Figures) -> None:
    async with grpc.aio.insecure_channel(server.address, options=channel_options(64 * 1024**2)) as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        counter = iter(range(10**9))

        async def put() -> object:
            return await stub.Set(
                pb.SetRequest(namespace=NS, key=f"bench:set:{next(counter) % 1000}", value=VALUE)
            )

        latency = await measure_latency(put, SEQUENTIAL)
        if figures.set_latency is None or latency.p50_ms < figures.set_latency.p50_ms:
            figures.set_latency = latency
        figures.set_rate = max(figures.set_rate, await measure_throughput(put, CONCURRENT, CONCURRENCY))
        keys = [f"bench:many:{i}" for i in range(MANY_KEYS)]
        await stub.SetMany(
            pb.SetManyRequest(namespace=NS, entries=[pb.SetManyEntry(key=k, value=VALUE) for k in keys])
        )
        request = pb.GetManyRequest(namespace=NS, keys=keys)

        async def get_many() -> object:
            reply = await stub.GetMany(request)
            assert len(reply.results) == MANY_KEYS
            assert reply.results[-1].value == VALUE
            return reply

        figures.many_seq_keys = max(
            figures.many_seq_keys, MANY_KEYS * await _rate_sequential(get_many, MANY_CALLS_SEQ)
        )
        rate = await measure_throughput(get_many, MANY_CALLS_CONC, MANY_CONCURRENCY, warmup=50)
        figures.many_conc_keys = max(figures.many_conc_keys, MANY_KEYS * rate)


async def _measure_redis(client: aioredis.Redis, prefix: str, figures: Figures) -> None:
    hot = f"{prefix}hot"
    await client.set(hot, VALUE, px=600_000)

    async def get() -> object:
        value = await client.get(hot)
        assert value == VALUE
        return value

    counter = iter(range(10**9))

    async def put() -> object:
        return await client.set(f"{prefix}set:{next(counter) % 1000}", VALUE, px=600_000)

    latency = await measure_latency(get, SEQUENTIAL)
    if figures.get_latency is None or latency.p50_ms < figures.get_latency.p50_ms:
        figures.get_latency = latency
    figures.get_rate = max(figures.get_rate, await measure_throughput(get, CONCURRENT, CONCURRENCY))
    latency = await measure_latency(put, SEQUENTIAL)
    if figures.set_latency is None or latency.p50_ms < figures.set_latency.p50_ms:
        figures.set_latency = latency
    figures.set_rate = max(figures.set_rate, await measure_throughput(put, CONCURRENT, CONCURRENCY))
    keys = [f"{prefix}many:{i}" for i in range(MANY_KEYS)]
    await client.mset({k: VALUE for k in keys})

    async def mget() -> object:
        values = await client.mget(keys)
        assert values[-1] == VALUE
        return values

    figures.many_seq_keys = max(
        figures.many_seq_keys, MANY_KEYS * await _rate_sequential(mget, MANY_CALLS_SEQ)
    )
    rate = await measure_throughput(mget, MANY_CALLS_CONC, MANY_CONCURRENCY, warmup=50)
    figures.many_conc_keys = max(figures.many_conc_keys, MANY_KEYS * rate)


def _cache_env(
    port: int, redis_url: str | None, prefix: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REDIS_URL", "CACHE_"))}
    env.update({"CACHE_LISTEN": f"127.0.0.1:{port}", "CACHE_REDIS_PREFIX": prefix, "LOG_LEVEL": "warning"})
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra or {})
    return env


def _start(
    stack: ExitStack, name: str, args: list[str], port: int, *, env: dict[str, str] | None, cache: bool
) -> Server:
    address = f"127.0.0.1:{port}"
    popen = stack.enter_context(server_process(args, address, env=env))
    return Server(name, address, psutil.Process(popen.pid), cache)


def _tracing_env(sink_port: int, ratio: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": ratio,
    }


def _measure_all(prefix: str) -> dict[str, Figures]:
    """Every configuration, in interleaved rounds (best of ROUNDS each, so a burst of load from
    elsewhere on the machine hurts one round of one configuration, not the comparison)."""
    figures = {name: Figures() for name in ("echo", "redis-py", "redis", "memory", "trace100", "trace10")}
    with ExitStack() as stack:
        sink_port = free_port()
        stack.enter_context(
            server_process(["-m", "bench.span_sink", "--port", str(sink_port)], f"127.0.0.1:{sink_port}")
        )
        servers: dict[str, Server] = {}
        port = free_port()
        servers["echo"] = _start(
            stack,
            "echo",
            ["-m", "bench.echo_server", "--mode", "bare", "--port", str(port)],
            port,
            env=None,
            cache=False,
        )
        for name, url, extra in (
            ("redis", SHARED_URL, None),
            ("memory", None, None),
            ("trace100", SHARED_URL, _tracing_env(sink_port, "1.0")),
            ("trace10", SHARED_URL, _tracing_env(sink_port, "0.1")),
        ):
            port = free_port()
            env = _cache_env(port, url, f"{prefix}{name}:", extra)
            servers[name] = _start(stack, name, ["-m", "services.cache"], port, env=env, cache=True)

        async def rounds() -> None:
            client = aioredis.Redis(
                connection_pool=aioredis.BlockingConnectionPool.from_url(SHARED_URL, max_connections=32)
            )
            try:
                for _ in range(ROUNDS):
                    for name in ("echo", "redis", "memory", "trace100", "trace10"):
                        await _measure_get(servers[name], figures[name])
                    await _measure_redis(client, f"{prefix}raw:", figures["redis-py"])
                    for name in ("redis", "memory"):
                        await _measure_set_and_many(servers[name], figures[name])
            finally:
                await client.aclose()

        asyncio.run(rounds())
    return figures


def _profile(redis_url: str, prefix: str) -> str:
    """Profile the cache server (cProfile) under the 64-caller Get load; the top functions."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cache.prof"
        args = ["-m", "cProfile", "-o", str(out), "-m", "services.cache"]
        with server_process(args, address, env=_cache_env(port, redis_url, prefix)) as popen:
            asyncio.run(_measure_get(Server("profiled", address, psutil.Process(popen.pid), True), Figures()))
        for _ in range(100):
            if out.exists() and out.stat().st_size:
                break
            time.sleep(0.1)
        stream_path = Path(tmp) / "stats.txt"
        with stream_path.open("w") as stream:
            stats = pstats.Stats(str(out), stream=stream)
            stats.sort_stats("tottime").print_stats(25)
        text = stream_path.read_text()
    PROFILE_OUT.parent.mkdir(parents=True, exist_ok=True)
    PROFILE_OUT.write_text(text)
    return text


def run() -> list[Row]:
    """Measure the floor, the anchor and ours; return the rows."""
    rows = _codec_rows()
    with ExitStack() as cleanup:
        prefix = unique_prefix("bench")
        cleanup.callback(delete_prefix, SHARED_URL, prefix)
        figures = _measure_all(prefix)
    rows += _rows(figures)
    if any(row.meets is False for row in rows):
        with ExitStack() as cleanup:
            prefix = unique_prefix("bench")
            cleanup.callback(delete_prefix, SHARED_URL, prefix)
            profile = _profile(SHARED_URL, prefix)
        print(
            "\ncache server profile under 64 concurrent Gets "
            "(cProfile, by own time; also in .bench/cache_profile.txt):"
        )
        print("\n".join(profile.splitlines()[:45]))
    return rows


def _rows(f: dict[str, Figures]) -> list[Row]:
    echo, raw, ours, memory = f["echo"], f["redis-py"], f["redis"], f["memory"]
    assert echo.get_latency
    assert ours.get_latency
    assert memory.get_latency
    assert raw.get_latency
    assert ours.set_latency
    assert memory.set_latency
    assert raw.set_latency
    added_redis = (ours.get_latency.p50_ms - echo.get_latency.p50_ms) * 1000
    added_memory = (memory.get_latency.p50_ms - echo.get_latency.p50_ms) * 1000
    cpu = (
        f"server CPU per call: echo {echo.get_cpu_us:.0f} us, ours {{ours:.0f}} us "
        f"(best of {ROUNDS} interleaved rounds)"
    )
    return [
        ratio_row(
            "cache Get, Redis, 64 callers",
            ours.get_rate,
            echo.get_rate,
            "calls/s",
            goal_ratio=0.8,
            anchor_name="bare grpcio echo",
            note=cpu.format(ours=ours.get_cpu_us),
        ),
        ratio_row(
            "cache Get, memory, 64 callers",
            memory.get_rate,
            echo.get_rate,
            "calls/s",
            goal_ratio=0.8,
            anchor_name="bare grpcio echo",
            note=cpu.format(ours=memory.get_cpu_us),
        ),
        _added_row("cache Get, Redis, p50 1 caller", ours.get_latency, echo.get_latency, added_redis),
        _added_row("cache Get, memory, p50 1 caller", memory.get_latency, echo.get_latency, added_memory),
        ratio_row(
            "cache Get, Redis, 64 callers vs redis-py",
            ours.get_rate,
            raw.get_rate,
            "calls/s",
            goal_ratio=None,
            anchor_name="redis-py GET",
        ),
        ratio_row(
            "cache Get, Redis, p50 1 caller vs redis-py",
            ours.get_latency.p50_ms,
            raw.get_latency.p50_ms,
            "ms",
            goal_ratio=None,
            higher_is_better=False,
            anchor_name="redis-py GET",
            note=f"p99 ours {ours.get_latency.p99_ms:.3f} ms, redis-py {raw.get_latency.p99_ms:.3f} ms, "
            f"echo {echo.get_latency.p99_ms:.3f} ms",
        ),
        ratio_row(
            "cache Set, Redis, 64 callers",
            ours.set_rate,
            raw.set_rate,
            "calls/s",
            goal_ratio=None,
            anchor_name="redis-py SET",
        ),
        ratio_row(
            "cache Set, memory, 64 callers",
            memory.set_rate,
            echo.get_rate,
            "calls/s",
            goal_ratio=None,
            anchor_name="bare grpcio echo",
        ),
        ratio_row(
            "cache Set, Redis, p50 1 caller",
            ours.set_latency.p50_ms,
            raw.set_latency.p50_ms,
            "ms",
            goal_ratio=None,
            higher_is_better=False,
            anchor_name="redis-py SET",
            note=f"p99 ours {ours.set_latency.p99_ms:.3f} ms; memory p50 {memory.set_latency.p50_ms:.3f} ms",
        ),
        _goal_row(
            f"cache GetMany {MANY_KEYS} keys, Redis, {MANY_CONCURRENCY} callers",
            ours.many_conc_keys,
            raw.many_conc_keys,
            f"redis-py MGET {MANY_KEYS}",
            goal=100_000,
            note=f"1 caller: ours {ours.many_seq_keys:,.0f} keys/s, MGET {raw.many_seq_keys:,.0f} keys/s; "
            f"memory backend {memory.many_conc_keys:,.0f} keys/s ({MANY_CONCURRENCY} callers)",
        ),
        ratio_row(
            "cache Get, tracing on (100% sampled), 64 callers",
            f["trace100"].get_rate,
            ours.get_rate,
            "calls/s",
            goal_ratio=None,
            anchor_name="tracing off",
            note=cpu.format(ours=f["trace100"].get_cpu_us),
        ),
        ratio_row(
            "cache Get, tracing on (10% sampled), 64 callers",
            f["trace10"].get_rate,
            ours.get_rate,
            "calls/s",
            goal_ratio=0.85,
            anchor_name="tracing off",
            note=cpu.format(ours=f["trace10"].get_cpu_us),
        ),
    ]


def _added_row(name: str, ours: Latency, echo: Latency, added_us: float) -> Row:
    return Row(
        name,
        ours.p50_ms,
        echo.p50_ms,
        ours.p50_ms / echo.p50_ms,
        "ms",
        "<= echo + 0.2 ms",
        added_us <= 200,
        "bare grpcio echo",
        f"added over the echo: {added_us:+.0f} us; p99 ours {ours.p99_ms:.3f} ms vs {echo.p99_ms:.3f} ms",
    )


def _goal_row(name: str, ours: float, anchor: float, anchor_name: str, *, goal: float, note: str) -> Row:
    return Row(
        name,
        ours,
        anchor,
        ours / anchor if anchor else float("inf"),
        "keys/s",
        f">= {goal:,.0f} keys/s",
        ours >= goal,
        anchor_name,
        note,
    )

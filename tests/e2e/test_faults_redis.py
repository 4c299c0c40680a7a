"""Redis killed (SIGKILL) under load, then started again, with the real cache, batch and processing
processes on it.

- The cache: a steady load of Set and Get calls from 16 concurrent callers; not one call fails,
  calls are answered from memory while Redis is dead (GetStats says degraded), and the cache goes
  back to Redis by itself (a key set afterwards is in Redis).
- The batch service: a running batch pauses (its calls that need Redis are UNAVAILABLE, never
  INTERNAL), and resumes by itself when Redis answers: it succeeds with every item recorded
  exactly once, outputs and catalog checked item by item.

Redis runs with an fsynced append-only file, as in the Kubernetes overlay, so what it acknowledged
survives the kill (the batch guarantees assume that).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
import redis

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from mediasuite.cache.v1 import cache_service_pb2 as cache_pb
from mediasuite.cache.v1 import cache_service_pb2_grpc
from mediasuite.processing.v1 import processing_service_pb2 as pb
from tests.support.batch import IMPORT_LIBRARY, batch_env, finished, make_tree, processing_env, run_batch
from tests.support.processes import service_process
from tests.support.redis import private_redis

pytestmark = [pytest.mark.fault, pytest.mark.slow]

NS = "thumbnail"
CALLERS = 16


class Load:
    """Callers that Set then Get their own keys until stopped; every outcome is counted."""

    def __init__(self, stub: cache_service_pb2_grpc.CacheServiceAsyncStub) -> None:
        self.stub = stub
        self.calls = 0
        self.errors: list[str] = []
        self.wrong: list[str] = []
        self.misses = 0  # a Get just after a switch of backend may miss (memory starts cold): allowed
        self._stop = asyncio.Event()

    async def _caller(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            key, value = f"load-{index}-{n % 50}", f"{index}:{n}".encode()
            try:
                await self.stub.Set(cache_pb.SetRequest(namespace=NS, key=key, value=value), timeout=5)
                got = await self.stub.Get(cache_pb.GetRequest(namespace=NS, key=key), timeout=5)
            except grpc.aio.AioRpcError as error:
                self.errors.append(f"{error.code().name}: {error.details()}")
            else:
                if not got.found:
                    self.misses += 1
                elif got.value != value:
                    self.wrong.append(f"{key}: set {value!r}, got {got.value!r}")
            self.calls += 2
            n += 1

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._caller(i)) for i in range(CALLERS)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def _until(predicate: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_redis_killed_under_load_cache_answers_from_memory_and_batch_pauses_then_resumes(
    tmp_path: Path,
) -> None:
    media, derived = tmp_path / "media", tmp_path / "derived"
    derived.mkdir()
    paths = make_tree(media, images=40)
    (tmp_path / "redis").mkdir()
    with private_redis(tmp_path / "redis", persistent=True) as server:
        fast = {
            "CACHE_REDIS_TIMEOUT": "100ms",
            "CACHE_REDIS_RETRY_MIN": "50ms",
            "CACHE_REDIS_RETRY_MAX": "300ms",
        }
        with (
            service_process(
                "cache", tmp_path, REDIS_URL=server.url, CACHE_REDIS_PREFIX="c:", **fast
            ) as cache,
            service_process("processing", tmp_path, **processing_env(media, derived)) as processing,
            service_process(
                "batch",
                tmp_path,
                **batch_env(
                    media,
                    derived,
                    redis_url=server.url,
                    prefix="b:",
                    processing=processing.address,
                    cache=cache.address,
                ),
                BATCH_PROGRESS_INTERVAL="200ms",
                LOG_FORMAT="text",
            ) as batch_process,
        ):
            async with (
                grpc.aio.insecure_channel(cache.address) as cache_channel,
                grpc.aio.insecure_channel(batch_process.address) as batch_channel,
            ):
                cache_stub: cache_service_pb2_grpc.CacheServiceAsyncStub = (
                    cache_service_pb2_grpc.CacheServiceStub(cache_channel)
                )
                batches = batch_service_pb2_grpc.BatchServiceStub(batch_channel)
                imported = await run_batch(batches, IMPORT_LIBRARY)
                assert finished(imported).state == bpb.BATCH_STATE_SUCCEEDED
                thumbnails = bpb.BatchSpec(
                    process=bpb.ProcessOperation(
                        thumbnail=bpb.ThumbnailOperation(
                            presets=["tiny", "small"], encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_PNG)
                        )
                    ),
                    selection=bpb.Selection(query=cpb.CatalogFilter()),
                    concurrency=1,
                )
                batch_id = (await batches.StartBatch(bpb.StartBatchRequest(spec=thumbnails))).batch.id

                async with Load(cache_stub) as load:
                    async for reply in batches.WatchBatch(
                        bpb.WatchBatchRequest(batch_id=batch_id), timeout=60
                    ):
                        if reply.event.WhichOneof("event") == "item_done":
                            break
                    calls_before = load.calls
                    server.kill()
                    outage_started = load.calls

                    async def degraded() -> bool:
                        stats = await cache_stub.GetStats(cache_pb.GetStatsRequest(namespace=NS), timeout=5)
                        return bool(stats.backend.degraded)

                    await _until(degraded, 10, "the cache says it is degraded")
                    await asyncio.sleep(1.0)  # the load goes on against memory
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await batches.GetBatch(bpb.GetBatchRequest(batch_id=batch_id), timeout=5)
                    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
                    during = load.calls - outage_started
                    server.start()

                    async def recovered() -> bool:
                        return not await degraded()

                    await _until(recovered, 20, "the cache is back on Redis")
                    await asyncio.sleep(0.3)
                assert load.errors == [], load.errors[:5]
                assert load.wrong == [], "a Get never returns another value than the last Set"
                assert load.misses < load.calls // 4, (load.misses, load.calls)
                assert calls_before > 0
                assert during > 100, "calls were answered from memory while Redis was dead"
                await cache_stub.Set(
                    cache_pb.SetRequest(namespace=NS, key="after", value=b"on redis"), timeout=5
                )
                client = redis.Redis.from_url(server.url)
                assert client.exists(f"c:e:{NS}:after") == 1, "the cache writes to Redis again"

                events = [
                    r.event
                    async for r in batches.WatchBatch(bpb.WatchBatchRequest(batch_id=batch_id), timeout=120)
                ]
                catalog = catalog_service_pb2_grpc.CatalogServiceStub(batch_channel)
                items = (await catalog.QueryItems(cpb.QueryItemsRequest(page_size=1000), timeout=10)).items
            log = batch_process.log()
        client.close()
    batch = finished(events)
    assert (batch.state, batch.done, batch.failed, batch.total) == (bpb.BATCH_STATE_SUCCEEDED, 40, 0, 40)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    done = [e.item_done.item_id for e in events if e.WhichOneof("event") == "item_done"]
    assert len(done) == len(set(done)) == 40, "every item exactly once"
    reasons = [e.phase.reason for e in events if e.WhichOneof("event") == "phase"]
    assert any(r.startswith("resumed: Redis answers again") for r in reasons), reasons
    assert "paused: Redis unreachable" in log or "Redis unreachable" in log
    assert sorted(i.path for i in items) == paths
    for item in items:
        assert [h.operation for h in item.history] == ["thumbnail", "thumbnail"], item.path
        for entry in item.history:
            assert (derived / entry.output.stored_path).is_file(), entry.output.stored_path
    assert "Traceback" not in log

"""A slow dependency: the processing service frozen with SIGSTOP (it accepts connections, answers
nothing) behind the real gateway and the real batch service.

Callers get DEADLINE_EXCEEDED (HTTP 504) when their deadline passes, not later; the stall does not
spread: the gateway and the batch service keep answering calls that do not need processing, keep
at most a batch's concurrency of calls in flight, and neither grows threads or memory over rounds
of stalled calls. Once processing runs again (SIGCONT) it serves at once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterable
from pathlib import Path

import grpc
import httpx
import psutil
import pytest

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from mediasuite.common.v1 import media_pb2 as common_pb
from mediasuite.processing.v1 import processing_service_pb2 as pb
from mediasuite.processing.v1 import processing_service_pb2_grpc
from tests.support.batch import IMPORT_LIBRARY, batch_env, finished, make_tree, processing_env, run_batch
from tests.support.processes import free_port, service_process
from tests.support.redis import SHARED_URL, delete_prefix, unique_prefix

pytestmark = [pytest.mark.fault, pytest.mark.slow]

CONCURRENCY = 64
ROUNDS = 3
DEADLINE_S = 1.0
# Generous: a late answer here means a deadline was not enforced (the default is 10 s), not a slow machine.
SLACK_S = 4.0
RSS_GROWTH_BOUND = 32 * 1024**2
STALLED_ITEMS = ["library/2021/01/img0001.jpg", "library/2022/02/img0002.jpg", "library/2020/03/img0003.jpg"]


def _footprint(pid: int) -> tuple[int, int]:
    process = psutil.Process(pid)
    return process.num_threads(), process.memory_info().rss


async def test_a_stalled_processing_service_gives_deadline_exceeded_and_the_stall_does_not_spread(
    tmp_path: Path,
) -> None:
    media, derived = tmp_path / "media", tmp_path / "derived"
    derived.mkdir()
    make_tree(media, images=12)
    prefix = unique_prefix("stall")
    listen = f"127.0.0.1:{free_port()}"
    try:
        with (
            service_process("cache", tmp_path) as cache,
            service_process("processing", tmp_path, **processing_env(media, derived)) as processing,
            service_process(
                "batch",
                tmp_path,
                **batch_env(
                    media,
                    derived,
                    redis_url=SHARED_URL,
                    prefix=prefix,
                    processing=processing.address,
                    cache=cache.address,
                ),
                BATCH_ITEM_ATTEMPTS="2",
                BATCH_RETRY_BACKOFF="50ms",
            ) as batch_process,
            service_process(
                "gateway",
                tmp_path,
                GATEWAY_HTTP_LISTEN=listen,
                CACHE_ADDR=cache.address,
                PROCESSING_ADDR=processing.address,
                BATCH_ADDR=batch_process.address,
                MONITOR_ADDR="127.0.0.1:9",
            ) as gateway,
        ):
            async with (
                httpx.AsyncClient(
                    base_url=f"http://{listen}", timeout=30, limits=httpx.Limits(max_connections=CONCURRENCY)
                ) as client,
                grpc.aio.insecure_channel(batch_process.address) as batch_channel,
                grpc.aio.insecure_channel(processing.address) as processing_channel,
            ):
                batches = batch_service_pb2_grpc.BatchServiceStub(batch_channel)
                catalog = catalog_service_pb2_grpc.CatalogServiceStub(batch_channel)
                imported = await run_batch(batches, IMPORT_LIBRARY, deadline=60)
                assert finished(imported).state == bpb.BATCH_STATE_SUCCEEDED
                probe = {"media": {"path": "library/2020/00/img0000.png"}}
                assert (await client.post("/v1/processing:probe", json=probe)).status_code == 200
                # A first thumbnail batch: the batch service reads (and keeps) processing's presets.
                warm = await run_batch(batches, _thumbnails(["library/2020/00/img0000.png"]), deadline=60)
                assert finished(warm).state == bpb.BATCH_STATE_SUCCEEDED
                # Warm both processes up to their steady state before measuring.
                await asyncio.gather(*(client.get("/v1/cache/stats") for _ in range(CONCURRENCY)))
                gateway_before = _footprint(gateway.popen.pid)
                batch_before = _footprint(batch_process.popen.pid)

                processing.popen.send_signal(signal.SIGSTOP)
                try:
                    # A batch on the stalled service: each item's attempt ends at its deadline.
                    thumbnails = _thumbnails(STALLED_ITEMS)
                    thumbnails.item_deadline.FromMilliseconds(int(DEADLINE_S * 1000))
                    submitted = asyncio.create_task(
                        _collect(batches.SubmitBatch(bpb.SubmitBatchRequest(spec=thumbnails), timeout=60))
                    )
                    for _ in range(ROUNDS):
                        started = time.monotonic()
                        replies = await asyncio.gather(
                            *(
                                client.post(
                                    "/v1/processing:probe", json=probe, headers={"grpc-timeout": "1S"}
                                )
                                for _ in range(CONCURRENCY)
                            )
                        )
                        elapsed = time.monotonic() - started
                        assert [r.status_code for r in replies] == [504] * CONCURRENCY
                        assert all(r.json()["code"] == 4 for r in replies)  # DEADLINE_EXCEEDED
                        assert elapsed < DEADLINE_S + SLACK_S, f"answered after {elapsed:.1f}s"
                        # Meanwhile everything that does not need processing answers.
                        other = await asyncio.gather(*(client.get("/v1/cache/stats") for _ in range(16)))
                        assert {r.status_code for r in other} == {200}
                        page = await catalog.QueryItems(cpb.QueryItemsRequest(page_size=5), timeout=5)
                        assert len(page.items) == 5
                    direct = processing_service_pb2_grpc.ProcessingServiceStub(processing_channel)
                    started = time.monotonic()
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await direct.Probe(
                            pb.ProbeRequest(media=common_pb.MediaRef(path="library/2020/00/img0000.png")),
                            timeout=1,
                        )
                    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                    assert time.monotonic() - started < DEADLINE_S + SLACK_S
                    events = await submitted
                    gateway_after = _footprint(gateway.popen.pid)
                    batch_after = _footprint(batch_process.popen.pid)
                finally:
                    processing.popen.send_signal(signal.SIGCONT)
                # Processing serves again right away.
                reply = await client.post("/v1/processing:probe", json=probe, headers={"grpc-timeout": "30S"})
                assert reply.status_code == 200, reply.text
    finally:
        delete_prefix(SHARED_URL, prefix)
    batch = finished(events)
    assert batch.state == bpb.BATCH_STATE_COMPLETED_WITH_FAILURES, batch
    failures = [e.item_failed for e in events if e.WhichOneof("event") == "item_failed"]
    assert len(failures) == len(STALLED_ITEMS)
    assert {f.error.code_name for f in failures} == {"DEADLINE_EXCEEDED"}
    assert all(f.attempts == 2 for f in failures), "each item retried once, then failed at its deadline"
    for name, before, after in (
        ("gateway", gateway_before, gateway_after),
        ("batch", batch_before, batch_after),
    ):
        assert after[0] <= before[0] + 2, f"{name} threads grew from {before[0]} to {after[0]}"
        assert after[1] - before[1] < RSS_GROWTH_BOUND, (
            f"{name} RSS grew by {(after[1] - before[1]) >> 20} MiB"
        )


async def _collect(call: AsyncIterable[bpb.SubmitBatchResponse]) -> list[bpb.BatchEvent]:
    return [reply.event async for reply in call]


def _thumbnails(paths: list[str]) -> bpb.BatchSpec:
    return bpb.BatchSpec(
        process=bpb.ProcessOperation(
            thumbnail=bpb.ThumbnailOperation(
                presets=["tiny"], encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_PNG)
            )
        ),
        selection=bpb.Selection(paths=bpb.MediaPaths(paths=paths)),
        concurrency=2,
    )

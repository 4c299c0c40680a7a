"""The batch service survives what production does to it: a SIGKILL in the middle of an atomic
batch (restart: the batch finishes exactly once), and a processing replica dying mid-batch (its
items are retried on the other replica). Real processes, real Redis, real files."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest
import redis

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from mediasuite.processing.v1 import processing_service_pb2 as pb
from tests.support.batch import (
    IMPORT_LIBRARY,
    batch_env,
    catalog_dump,
    finished,
    make_tree,
    processing_env,
    run_batch,
    submit_until_killed,
    watch_batch,
)
from tests.support.processes import service_process
from tests.support.redis import SHARED_URL, delete_prefix, unique_prefix

pytestmark = [pytest.mark.fault, pytest.mark.slow]

THUMBNAILS = bpb.ProcessOperation(
    thumbnail=bpb.ThumbnailOperation(
        presets=["tiny", "small"], encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_PNG)
    )
)


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    media, derived = tmp_path / "media", tmp_path / "derived"
    media.mkdir()
    derived.mkdir()
    return media, derived


def _batch_env(media: Path, derived: Path, prefix: str, processing: str) -> dict[str, str]:
    return {
        **batch_env(media, derived, redis_url=SHARED_URL, prefix=prefix, processing=processing),
        "BATCH_RETRY_BACKOFF": "20ms",
        "BATCH_PROGRESS_INTERVAL": "200ms",
        "LOG_FORMAT": "text",
    }


async def _import(stub: batch_service_pb2_grpc.BatchServiceAsyncStub) -> None:
    assert finished(await run_batch(stub, IMPORT_LIBRARY)).state == bpb.BATCH_STATE_SUCCEEDED


async def test_sigkill_mid_atomic_batch_then_restart_finishes_exactly_once(tmp_path: Path) -> None:
    media, derived = _dirs(tmp_path)
    paths = make_tree(media, images=80)
    prefix = unique_prefix("batchkill")
    try:
        with service_process("processing", tmp_path, **processing_env(media, derived)) as processing:
            env = _batch_env(media, derived, prefix, processing.address)
            with service_process("batch", tmp_path, **env) as first:
                async with grpc.aio.insecure_channel(first.address) as channel:
                    stub = batch_service_pb2_grpc.BatchServiceStub(channel)
                    await _import(stub)
                    before = catalog_dump(SHARED_URL, prefix)
                    spec = bpb.BatchSpec(
                        process=THUMBNAILS,
                        selection=bpb.Selection(query=cpb.CatalogFilter()),
                        atomic=True,
                        concurrency=1,
                    )
                    seen = await submit_until_killed(
                        stub,
                        spec,
                        first,
                        lambda so_far: sum(e.WhichOneof("event") == "item_done" for e in so_far) == 20,
                    )
                    first.popen.wait(10)
                batch_id = seen[0].batch_id
                staged = list((derived / ".staging" / batch_id).rglob("*.png"))
                assert staged, "the batch was killed with outputs staged"
                assert not list(derived.glob("??/??/*.png")), "nothing was published before the commit"
                assert catalog_dump(SHARED_URL, prefix) == before
            with service_process("batch", tmp_path, **env) as second:
                async with grpc.aio.insecure_channel(second.address) as channel:
                    events = await watch_batch(batch_service_pb2_grpc.BatchServiceStub(channel), batch_id)
                    catalog = catalog_service_pb2_grpc.CatalogServiceStub(channel)
                    items = (await catalog.QueryItems(cpb.QueryItemsRequest(page_size=1000))).items
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert [e.SerializeToString() for e in events[: len(seen)]] == [e.SerializeToString() for e in seen]
        batch = finished(events)
        assert (batch.state, batch.done, batch.failed, batch.total) == (bpb.BATCH_STATE_SUCCEEDED, 80, 0, 80)
        done = [e.item_done.item_id for e in events if e.WhichOneof("event") == "item_done"]
        assert len(done) == 80
        assert len(set(done)) == 80  # every item exactly once
        reasons = [e.phase.reason for e in events if e.WhichOneof("event") == "phase"]
        assert any("resumed" in r for r in reasons), reasons
        outputs = sorted(p.relative_to(derived).as_posix() for p in derived.rglob("*.png"))
        recorded = sorted(
            o.stored_path for e in events if e.WhichOneof("event") == "item_done" for o in e.item_done.outputs
        )
        assert outputs == recorded
        assert len(outputs) == 160  # each output exists once, none staged
        assert not (derived / ".staging").exists()
        assert sorted(i.path for i in items) == paths
        for item in items:
            assert [h.operation for h in item.history] == ["thumbnail", "thumbnail"]
            assert all((derived / h.output.stored_path).is_file() for h in item.history)
        # Nothing of the batch is left active for a third start to resume.
        client = redis.Redis.from_url(SHARED_URL)
        assert client.smembers(f"{prefix}b:active") == set()
        client.close()
    finally:
        delete_prefix(SHARED_URL, prefix)


async def test_a_processing_replica_dies_mid_batch_and_no_item_fails(tmp_path: Path) -> None:
    media, derived = _dirs(tmp_path)
    make_tree(media, images=90)
    prefix = unique_prefix("batchlb")
    penv = processing_env(media, derived)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    try:
        with (
            service_process("processing", tmp_path / "a", **penv) as a,
            service_process("processing", tmp_path / "b", **penv) as b,
        ):
            # Client-side round_robin over both replicas (the runtime's service config).
            env = _batch_env(media, derived, prefix, f"ipv4:{a.address},{b.address}")
            with service_process("batch", tmp_path, **env) as batch_process:
                async with grpc.aio.insecure_channel(batch_process.address) as channel:
                    stub = batch_service_pb2_grpc.BatchServiceStub(channel)
                    await _import(stub)
                    spec = bpb.BatchSpec(
                        process=THUMBNAILS, selection=bpb.Selection(query=cpb.CatalogFilter()), concurrency=4
                    )
                    events: list[bpb.BatchEvent] = []
                    killed_at = 0
                    async for reply in stub.SubmitBatch(bpb.SubmitBatchRequest(spec=spec), timeout=120):
                        events.append(reply.event)
                        if not killed_at and sum(e.WhichOneof("event") == "item_done" for e in events) == 15:
                            a.popen.send_signal(signal.SIGKILL)
                            killed_at = len(events)
                log = batch_process.log()
            assert a.popen.wait(10) == -signal.SIGKILL
        batch = finished(events)
        assert (batch.state, batch.done, batch.failed) == (bpb.BATCH_STATE_SUCCEEDED, 90, 0), batch.reason
        after = [e for e in events[killed_at:] if e.WhichOneof("event") == "item_done"]
        assert len(after) >= 70  # the rest went to the surviving replica
        assert "Traceback" not in log
    finally:
        delete_prefix(SHARED_URL, prefix)


async def test_graceful_shutdown_pauses_and_the_next_start_resumes(tmp_path: Path) -> None:
    media, derived = _dirs(tmp_path)
    make_tree(media, images=80)
    prefix = unique_prefix("batchpause")
    try:
        with service_process("processing", tmp_path, **processing_env(media, derived)) as processing:
            env = _batch_env(media, derived, prefix, processing.address)
            with service_process("batch", tmp_path, **env) as first:
                async with grpc.aio.insecure_channel(first.address) as channel:
                    stub = batch_service_pb2_grpc.BatchServiceStub(channel)
                    await _import(stub)
                    spec = bpb.BatchSpec(
                        process=THUMBNAILS, selection=bpb.Selection(query=cpb.CatalogFilter()), concurrency=1
                    )
                    started = await stub.StartBatch(bpb.StartBatchRequest(spec=spec))
                    batch_id = started.batch.id
                    async for reply in stub.WatchBatch(bpb.WatchBatchRequest(batch_id=batch_id)):
                        if reply.event.WhichOneof("event") == "item_done":
                            break
                assert first.stop(signal.SIGTERM) == 0
            client = redis.Redis.from_url(SHARED_URL)
            assert client.hget(f"{prefix}b:{batch_id}", "state") == b"paused"
            client.close()
            with service_process("batch", tmp_path, **env) as second:
                async with grpc.aio.insecure_channel(second.address) as channel:
                    events = await watch_batch(batch_service_pb2_grpc.BatchServiceStub(channel), batch_id)
        phases = [
            (bpb.BatchState.Name(e.phase.state), e.phase.reason)
            for e in events
            if e.WhichOneof("event") == "phase"
        ]
        assert ("BATCH_STATE_PAUSED", "service shutting down: resumes on the next start") in phases
        assert ("BATCH_STATE_RUNNING", "resumed after a restart") in phases
        batch = finished(events)
        assert (batch.state, batch.done, batch.failed) == (bpb.BATCH_STATE_SUCCEEDED, 80, 0)
        done = [e.item_done.item_id for e in events if e.WhichOneof("event") == "item_done"]
        assert len(done) == len(set(done)) == 80
    finally:
        delete_prefix(SHARED_URL, prefix)

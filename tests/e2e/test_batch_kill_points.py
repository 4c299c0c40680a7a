"""SIGKILL of the batch service at more points of a batch than tests/e2e/test_batch_faults.py
covers (there: an atomic batch killed while its items are processed): an atomic batch killed
during its commit, and a non-atomic batch killed while its items are processed. After a restart
each batch completes exactly once; every output and every catalog item is checked one by one.
"""

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

PRESETS = ["tiny", "small", "medium"]


def _spec(atomic: bool) -> bpb.BatchSpec:
    return bpb.BatchSpec(
        process=bpb.ProcessOperation(
            thumbnail=bpb.ThumbnailOperation(
                presets=PRESETS, encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_PNG)
            )
        ),
        selection=bpb.Selection(query=cpb.CatalogFilter()),
        atomic=atomic,
        concurrency=4,
    )


def _kill_now(point: str, events: list[bpb.BatchEvent]) -> bool:
    last = events[-1]
    if point == "commit":
        return last.WhichOneof("event") == "phase" and last.phase.state == bpb.BATCH_STATE_COMMITTING
    return sum(e.WhichOneof("event") == "item_done" for e in events) == 25


@pytest.mark.parametrize(("atomic", "point"), [(True, "commit"), (False, "processing")])
async def test_sigkill_then_restart_completes_the_batch_exactly_once(
    tmp_path: Path, atomic: bool, point: str
) -> None:
    media, derived = tmp_path / "media", tmp_path / "derived"
    derived.mkdir()
    count = 90
    paths = make_tree(media, images=count)
    prefix = unique_prefix("batchkillpoints")
    try:
        with service_process(
            "processing", tmp_path, **processing_env(media, derived, workers=2)
        ) as processing:
            env = {
                **batch_env(
                    media, derived, redis_url=SHARED_URL, prefix=prefix, processing=processing.address
                ),
                "BATCH_PROGRESS_INTERVAL": "200ms",
                "LOG_FORMAT": "text",
            }
            with service_process("batch", tmp_path, **env) as first:
                async with grpc.aio.insecure_channel(first.address) as channel:
                    stub = batch_service_pb2_grpc.BatchServiceStub(channel)
                    imported = await run_batch(stub, IMPORT_LIBRARY)
                    assert finished(imported).state == bpb.BATCH_STATE_SUCCEEDED
                    before = catalog_dump(SHARED_URL, prefix)
                    seen = await submit_until_killed(
                        stub, _spec(atomic), first, lambda so_far: _kill_now(point, so_far)
                    )
                assert first.popen.wait(10) == -signal.SIGKILL
            batch_id = seen[0].batch_id
            client = redis.Redis.from_url(SHARED_URL)
            state_at_kill = client.hget(f"{prefix}b:{batch_id}", "state")
            client.close()
            if point == "commit":
                assert state_at_kill == b"committing", "killed during the commit"
                if not (derived / ".staging" / batch_id).exists():
                    pytest.fail("every staged output was published before the kill: the kill came too late")
            else:
                assert state_at_kill == b"running"
                assert catalog_dump(SHARED_URL, prefix) != before, "non-atomic items are applied one by one"
            with service_process("batch", tmp_path, **env) as second:
                async with grpc.aio.insecure_channel(second.address) as channel:
                    events = await watch_batch(batch_service_pb2_grpc.BatchServiceStub(channel), batch_id)
                    catalog = catalog_service_pb2_grpc.CatalogServiceStub(channel)
                    items = (
                        await catalog.QueryItems(cpb.QueryItemsRequest(page_size=1000), timeout=10)
                    ).items
                log = second.log()
        # The journal: every event once, in order, the first ones exactly as the killed process sent them.
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert [e.SerializeToString() for e in events[: len(seen)]] == [e.SerializeToString() for e in seen]
        batch = finished(events)
        assert (batch.state, batch.done, batch.failed, batch.total) == (
            bpb.BATCH_STATE_SUCCEEDED,
            count,
            0,
            count,
        )
        done = [e.item_done.item_id for e in events if e.WhichOneof("event") == "item_done"]
        assert len(done) == len(set(done)) == count, "every item recorded exactly once"
        reasons = [e.phase.reason for e in events if e.WhichOneof("event") == "phase"]
        expected = (
            "resuming the commit after a restart" if point == "commit" else "resumed: the service stopped"
        )
        assert any(r.startswith(expected) for r in reasons), reasons
        # File by file: what the events name is on disk, nothing else is, nothing is left staged.
        recorded = sorted(
            o.stored_path for e in events if e.WhichOneof("event") == "item_done" for o in e.item_done.outputs
        )
        assert len(recorded) == len(set(recorded)) == count * len(PRESETS)
        on_disk = sorted(p.relative_to(derived).as_posix() for p in derived.rglob("*.png"))
        assert on_disk == recorded
        for stored in recorded:
            data = (derived / stored).read_bytes()
            assert data.startswith(b"\x89PNG\r\n\x1a\n"), stored
            assert (derived / stored).with_suffix(".json").is_file(), f"{stored} has its sidecar"
        assert not (derived / ".staging").exists() or not any((derived / ".staging").iterdir())
        # Item by item: the catalog names each output once (no duplicate history from the redo).
        assert sorted(i.path for i in items) == paths
        by_output = {}
        for item in items:
            assert [h.operation for h in item.history] == ["thumbnail"] * len(PRESETS), item.path
            for entry in item.history:
                assert (derived / entry.output.stored_path).is_file(), entry.output.stored_path
                by_output[entry.output.stored_path] = item.path
        assert sorted(by_output) == recorded
        assert "Traceback" not in log
        client = redis.Redis.from_url(SHARED_URL)
        assert client.smembers(f"{prefix}b:active") == set(), "nothing is left for a third start to resume"
        client.close()
    finally:
        delete_prefix(SHARED_URL, prefix)

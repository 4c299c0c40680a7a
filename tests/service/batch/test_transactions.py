"""Atomic batches publish everything or nothing; cancelling rolls an atomic batch back and stops a
non-atomic one with its done items kept. Real processing, real files, the catalog compared byte
for byte in Redis."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from mediasuite.processing.v1 import processing_service_pb2 as pb
from tests.service.batch.conftest import Factory, Suite
from tests.support.batch import catalog_dump, finished, kinds, make_tree, run_batch


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _thumbnails(atomic: bool, **fields: object) -> bpb.BatchSpec:
    return bpb.BatchSpec(
        process=bpb.ProcessOperation(
            thumbnail=bpb.ThumbnailOperation(
                presets=["tiny", "small"], encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_WEBP)
            )
        ),
        selection=bpb.Selection(query=cpb.CatalogFilter(kind=cpb.MEDIA_KIND_IMAGE)),
        atomic=atomic,
        **fields,  # type: ignore[arg-type]
    )


async def _imported(suite: Suite, images: int) -> list[str]:
    paths = make_tree(suite.media, images=images)
    batch = finished(await run_batch(suite.batch, bpb.BatchSpec(
        import_directory=bpb.ImportOperation(directory="library", recursive=True)
    )))  # fmt: skip
    assert batch.state == bpb.BATCH_STATE_SUCCEEDED
    return paths


async def test_atomic_batch_commits_every_output_and_change_at_once(batch_suite: Factory) -> None:
    async with batch_suite() as suite:
        paths = await _imported(suite, 24)
        events = await run_batch(suite.batch, _thumbnails(True))
        batch = finished(events)
        assert batch.state == bpb.BATCH_STATE_SUCCEEDED, batch.reason
        assert batch.done == 24
        phases = [bpb.BatchState.Name(e.phase.state) for e in events if e.WhichOneof("event") == "phase"]
        assert phases[-2:] == ["BATCH_STATE_COMMITTING", "BATCH_STATE_SUCCEEDED"]
        outputs = [o for e in events if e.WhichOneof("event") == "item_done" for o in e.item_done.outputs]
        assert len(outputs) == 48
        stored = _files(suite.derived)
        # Each output once under its content address, with its sidecar; nothing left staged.
        assert sorted(o.stored_path for o in outputs) == sorted(p for p in stored if not p.endswith(".json"))
        assert len(stored) == 96
        assert not (suite.derived / ".staging").exists()
        for output in outputs:
            assert (suite.derived / output.stored_path).stat().st_size == output.size_bytes
            assert output.media_type == "image/webp"
            assert max(output.width, output.height) in (40, 64, 96)
        reply = await suite.catalog.QueryItems(cpb.QueryItemsRequest(page_size=1000))
        assert len(reply.items) == len(paths)
        for item in reply.items:
            assert [h.operation for h in item.history] == ["thumbnail", "thumbnail"]
            assert {h.output.stored_path for h in item.history} <= set(stored)


async def test_atomic_batch_beyond_max_failures_leaves_nothing(batch_suite: Factory) -> None:
    async with batch_suite() as suite:
        paths = await _imported(suite, 30)
        # The last item in path order becomes undecodable: every other item is staged by then.
        broken = sorted(p for p in paths)[-1]
        (suite.media / broken).write_bytes(b"<html>not an image</html>" * 20)
        before = catalog_dump(suite.redis_url, suite.prefix)
        assert before
        events = await run_batch(suite.batch, _thumbnails(True, concurrency=1, max_failures=0))
        batch = finished(events)
        assert batch.state == bpb.BATCH_STATE_FAILED
        assert "max_failures 0 exceeded" in batch.reason
        failed = [e.item_failed for e in events if e.WhichOneof("event") == "item_failed"]
        assert [f.path for f in failed] == [broken]
        assert failed[0].error.code_name == "INVALID_ARGUMENT"
        assert failed[0].attempts == 1  # never retried
        assert batch.done == 29
        phases = [bpb.BatchState.Name(e.phase.state) for e in events if e.WhichOneof("event") == "phase"]
        assert phases[-2:] == ["BATCH_STATE_ROLLING_BACK", "BATCH_STATE_FAILED"]
        assert _files(suite.derived) == []  # nothing published, nothing left staged
        assert catalog_dump(suite.redis_url, suite.prefix) == before


async def _cancel_after(suite: Suite, spec: bpb.BatchSpec, done: int) -> list[bpb.BatchEvent]:
    events: list[bpb.BatchEvent] = []
    seen = 0
    cancelled = False
    async for reply in suite.batch.SubmitBatch(bpb.SubmitBatchRequest(spec=spec), timeout=120):
        events.append(reply.event)
        if reply.event.WhichOneof("event") == "item_done":
            seen += 1
            if seen == done and not cancelled:
                cancelled = True
                answer = await suite.batch.CancelBatch(
                    bpb.CancelBatchRequest(batch_id=reply.event.batch_id, reason="enough for today")
                )
                assert answer.batch.id == reply.event.batch_id
    return events


async def test_cancel_rolls_an_atomic_batch_back(batch_suite: Factory) -> None:
    async with batch_suite() as suite:
        await _imported(suite, 60)
        before = catalog_dump(suite.redis_url, suite.prefix)
        events = await _cancel_after(suite, _thumbnails(True, concurrency=1), done=5)
        batch = finished(events)
        assert batch.state == bpb.BATCH_STATE_CANCELLED
        assert batch.reason == "cancelled by caller: enough for today"
        assert 5 <= batch.done < 60
        assert _files(suite.derived) == []
        assert catalog_dump(suite.redis_url, suite.prefix) == before
        # A finished batch cannot be cancelled again.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await suite.batch.CancelBatch(bpb.CancelBatchRequest(batch_id=batch.id))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_cancel_stops_a_non_atomic_batch_and_keeps_done_items(batch_suite: Factory) -> None:
    async with batch_suite() as suite:
        await _imported(suite, 60)
        events = await _cancel_after(suite, _thumbnails(False, concurrency=1), done=5)
        batch = finished(events)
        assert batch.state == bpb.BATCH_STATE_CANCELLED
        assert 5 <= batch.done < 60
        assert "rolling_back" not in " ".join(kinds(events))
        done = [e.item_done for e in events if e.WhichOneof("event") == "item_done"]
        assert len(done) == batch.done
        for item in done:
            got = await suite.catalog.GetItem(cpb.GetItemRequest(id=item.item_id))
            assert [h.operation for h in got.item.history] == ["thumbnail", "thumbnail"]
            for output in item.outputs:
                assert (suite.derived / output.stored_path).is_file()
        reply = await suite.catalog.QueryItems(cpb.QueryItemsRequest(page_size=1000))
        untouched = [i for i in reply.items if not i.history]
        assert len(untouched) == 60 - batch.done

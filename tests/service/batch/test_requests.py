"""What callers get: idempotency keys, bad selections refused before any work, re-attaching with
WatchBatch, catalog actions (purge needs the admin scope), listing, the summary."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from mediasuite.processing.v1 import processing_service_pb2 as pb
from services.batch.catalog import item_id
from tests.service.batch.conftest import Factory, Suite
from tests.support.batch import catalog_dump, finished, make_tree, run_batch
from tests.support.grpc_errors import detail

IMPORT = bpb.BatchSpec(import_directory=bpb.ImportOperation(directory="library", recursive=True))


async def _imported(suite: Suite, images: int = 12) -> list[str]:
    paths = make_tree(suite.media, images=images)
    assert finished(await run_batch(suite.batch, IMPORT)).state == bpb.BATCH_STATE_SUCCEEDED
    return paths


def _catalog(action: int, selection: bpb.Selection, **fields: object) -> bpb.BatchSpec:
    return bpb.BatchSpec(
        catalog=bpb.CatalogOperation(action=action, **fields),  # type: ignore[arg-type]
        selection=selection,
    )


async def _batch_count(suite: Suite) -> int:
    reply = await suite.batch.ListBatches(bpb.ListBatchesRequest(page_size=500))
    return len(reply.batches)


async def test_an_idempotency_key_returns_the_first_batch(batch_suite: Factory) -> None:
    async with batch_suite() as suite:
        paths = await _imported(suite)
        spec = _catalog(
            bpb.CATALOG_ACTION_TAG,
            bpb.Selection(paths=bpb.MediaPaths(paths=paths[:3])),
            tags=["Holiday"],
        )
        spec.idempotency_key = "tag-holiday-1"
        first = await run_batch(suite.batch, spec)
        batches = await _batch_count(suite)
        again = await run_batch(suite.batch, spec)  # the same events, replayed from the start
        assert [e.SerializeToString() for e in again] == [e.SerializeToString() for e in first]
        started = await suite.batch.StartBatch(bpb.StartBatchRequest(spec=spec))
        assert started.batch.id == first[0].batch_id
        assert await _batch_count(suite) == batches
        item = await suite.catalog.GetItem(cpb.GetItemRequest(id=item_id(paths[0])))
        assert list(item.item.tags) == ["holiday"]


@pytest.mark.parametrize(
    ("selection", "code", "field"),
    [
        (bpb.Selection(paths=bpb.MediaPaths(paths=["../outside.jpg"])), "PERMISSION_DENIED", ""),
        (bpb.Selection(paths=bpb.MediaPaths(paths=["/etc/passwd"])), "PERMISSION_DENIED", ""),
        (
            bpb.Selection(ids=bpb.ItemIds(ids=["0123456789abcdef0123"])),
            "INVALID_ARGUMENT",
            "spec.selection.ids[0]",
        ),
        (bpb.Selection(ids=bpb.ItemIds()), "INVALID_ARGUMENT", "spec.selection.ids"),
        (bpb.Selection(), "INVALID_ARGUMENT", "spec.selection"),
        (
            bpb.Selection(query=cpb.CatalogFilter(path_contains="no-such-thing")),
            "INVALID_ARGUMENT",
            "spec.selection.query",
        ),
    ],
    ids=["dotdot", "absolute", "unknown-id", "empty-ids", "no-selection", "empty-query"],
)
async def test_bad_selections_are_refused_before_any_work(
    batch_suite: Factory, selection: bpb.Selection, code: str, field: str
) -> None:
    async with batch_suite() as suite:
        await _imported(suite)
        (suite.media.parent / "outside.jpg").write_bytes(b"x")
        before = catalog_dump(suite.redis_url, suite.prefix)
        batches = await _batch_count(suite)
        spec = _catalog(bpb.CATALOG_ACTION_APPROVE, selection)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await suite.batch.StartBatch(bpb.StartBatchRequest(spec=spec))
        assert caught.value.code().name == code, caught.value.details()
        if field:
            bad = detail(caught.value, error_details_pb2.BadRequest)
            assert bad is not None
            assert bad.field_violations[0].field == field
        assert await _batch_count(suite) == batches
        assert catalog_dump(suite.redis_url, suite.prefix) == before


async def test_unknown_operation_parameters_are_refused(batch_suite: Factory) -> None:
    async with batch_suite() as suite:
        paths = await _imported(suite)
        selection = bpb.Selection(paths=bpb.MediaPaths(paths=paths[:2]))
        cases = [
            (
                bpb.ProcessOperation(thumbnail=bpb.ThumbnailOperation(presets=["huge"])),
                "spec.process.thumbnail.presets[0]",
            ),
            (bpb.ProcessOperation(thumbnail=bpb.ThumbnailOperation()), "spec.process.thumbnail.presets"),
            (bpb.ProcessOperation(convert=bpb.ConvertOperation()), "spec.process.convert.encode.format"),
            (
                bpb.ProcessOperation(optimize=bpb.OptimizeOperation(min_ssim=1.5)),
                "spec.process.optimize.min_ssim",
            ),
            (bpb.ProcessOperation(), "spec.process.operation"),
        ]
        for operation, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await suite.batch.StartBatch(
                    bpb.StartBatchRequest(spec=bpb.BatchSpec(process=operation, selection=selection))
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            bad = detail(caught.value, error_details_pb2.BadRequest)
            assert bad is not None
            assert bad.field_violations[0].field == field
        spec = _catalog(bpb.CATALOG_ACTION_TAG, selection, tags=[""])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await suite.batch.StartBatch(bpb.StartBatchRequest(spec=spec))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        spec = _catalog(bpb.CATALOG_ACTION_APPROVE, selection)
        spec.concurrency = 100_000
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await suite.batch.StartBatch(bpb.StartBatchRequest(spec=spec))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "BATCH_MAX_CONCURRENCY" in (caught.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await suite.batch.GetBatch(bpb.GetBatchRequest(batch_id="0000000000000000"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_client_that_reattaches_sees_every_event_once_in_order(batch_suite: Factory) -> None:
    async with batch_suite() as suite:
        await _imported(suite, 40)
        spec = bpb.BatchSpec(
            process=bpb.ProcessOperation(
                thumbnail=bpb.ThumbnailOperation(
                    presets=["tiny"], encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_PNG)
                )
            ),
            selection=bpb.Selection(query=cpb.CatalogFilter()),
            concurrency=1,
        )
        seen: list[bpb.BatchEvent] = []
        call = suite.batch.SubmitBatch(bpb.SubmitBatchRequest(spec=spec), timeout=60)
        async for reply in call:
            seen.append(reply.event)
            if len(seen) == 7:
                call.cancel()  # the connection is lost mid-batch
                break
        batch_id = seen[0].batch_id
        while True:
            watch = suite.batch.WatchBatch(
                bpb.WatchBatchRequest(batch_id=batch_id, after_sequence=seen[-1].sequence), timeout=60
            )
            count = 0
            async for watched in watch:
                seen.append(watched.event)
                count += 1
                if count == 9:  # lose it again, a few times
                    watch.cancel()
                    break
            else:
                break
        assert seen[-1].WhichOneof("event") == "finished"
        assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
        full = [r.event async for r in suite.batch.WatchBatch(bpb.WatchBatchRequest(batch_id=batch_id))]
        assert [e.SerializeToString() for e in full] == [e.SerializeToString() for e in seen]
        tail = [r.event async for r in suite.batch.WatchBatch(
            bpb.WatchBatchRequest(batch_id=batch_id, after_sequence=len(seen) - 2)
        )]  # fmt: skip
        assert [e.sequence for e in tail] == [len(seen) - 1, len(seen)]


async def test_catalog_actions_and_purge_needs_admin(batch_suite: Factory) -> None:
    async with batch_suite() as suite:
        paths = await _imported(suite, 10)
        pick = bpb.Selection(paths=bpb.MediaPaths(paths=paths[:4]))
        for action, fields in (
            (bpb.CATALOG_ACTION_TAG, {"tags": ["Sea", "sun"]}),
            (bpb.CATALOG_ACTION_UNTAG, {"tags": ["sun"]}),
            (bpb.CATALOG_ACTION_CATEGORIZE, {"category": "travel"}),
            (bpb.CATALOG_ACTION_APPROVE, {}),
        ):
            batch = finished(await run_batch(suite.batch, _catalog(action, pick, **fields)))
            assert (batch.state, batch.done) == (bpb.BATCH_STATE_SUCCEEDED, 4)
        reply = await suite.catalog.QueryItems(
            cpb.QueryItemsRequest(
                filter=cpb.CatalogFilter(
                    tags=["sea"], categories=["travel"], statuses=[cpb.REVIEW_STATUS_APPROVED]
                )
            )
        )
        assert sorted(i.path for i in reply.items) == sorted(paths[:4])
        assert all(list(i.tags) == ["sea"] for i in reply.items)

        trash = _catalog(bpb.CATALOG_ACTION_TRASH, bpb.Selection(paths=bpb.MediaPaths(paths=paths[:2])))
        assert finished(await run_batch(suite.batch, trash)).done == 2
        visible = await suite.catalog.QueryItems(cpb.QueryItemsRequest(page_size=100))
        assert len(visible.items) == 8  # trashed items are hidden unless asked for
        summary = await suite.catalog.GetSummary(cpb.GetSummaryRequest())
        assert summary.total.count == 8
        assert summary.by_status["trashed"].count == 2
        assert summary.by_category["travel"].count == 2
        assert not summary.cached

        restore = _catalog(bpb.CATALOG_ACTION_RESTORE, bpb.Selection(paths=bpb.MediaPaths(paths=paths[:1])))
        assert finished(await run_batch(suite.batch, restore)).done == 1
        item = await suite.catalog.GetItem(cpb.GetItemRequest(id=item_id(paths[0])))
        assert item.item.status == cpb.REVIEW_STATUS_APPROVED  # back to what it was

        purge = _catalog(
            bpb.CATALOG_ACTION_PURGE,
            bpb.Selection(query=cpb.CatalogFilter(statuses=[cpb.REVIEW_STATUS_TRASHED])),
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await run_batch(suite.batch, purge)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (suite.media / paths[1]).exists()
        batch = finished(await run_batch(suite.batch, purge, metadata=[("mediasuite-scope", "admin")]))
        assert (batch.state, batch.done) == (bpb.BATCH_STATE_SUCCEEDED, 1)
        assert not (suite.media / paths[1]).exists()
        assert (suite.media / paths[0]).exists()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await suite.catalog.GetItem(cpb.GetItemRequest(id=item_id(paths[1])))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        listed = await suite.batch.ListBatches(
            bpb.ListBatchesRequest(states=[bpb.BATCH_STATE_SUCCEEDED], page_size=3)
        )
        assert len(listed.batches) == 3
        assert listed.page.next_page_token
        assert listed.batches[0].spec.catalog.action == bpb.CATALOG_ACTION_PURGE  # newest first
        rest = await suite.batch.ListBatches(
            bpb.ListBatchesRequest(states=[bpb.BATCH_STATE_SUCCEEDED], page_token=listed.page.next_page_token)
        )
        assert len(rest.batches) == 5  # one import and seven catalog batches succeeded
        assert not rest.page.next_page_token
        ids = [b.id for b in [*listed.batches, *rest.batches]]
        assert len(set(ids)) == 8
        assert rest.batches[-1].spec.HasField("import_directory")


@pytest.mark.parametrize(
    ("name", "seconds", "nanos"),
    [("since", 2**63 - 1, 0), ("until", -(2**63), 0), ("since", 0, 2**31 - 1), ("until", 0, -1)],
)
async def test_an_out_of_range_time_in_a_filter_is_invalid_argument_not_internal(
    batch_suite: Factory, name: str, seconds: int, nanos: int
) -> None:
    # Found by tests/e2e/test_fuzz_protobuf.py: Timestamp.ToNanoseconds raised ValueError (INTERNAL).
    async with batch_suite() as suite:
        flt = cpb.CatalogFilter()
        getattr(flt, name).seconds = seconds
        getattr(flt, name).nanos = nanos
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await suite.catalog.QueryItems(cpb.QueryItemsRequest(filter=flt, page_size=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"filter.{name} is not a valid time" in (caught.value.details() or "")

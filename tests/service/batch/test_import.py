"""Import a generated tree of real images and videos through real processing; re-import is
incremental (unchanged files skipped by size and mtime, a changed one re-probed)."""

from __future__ import annotations

import os

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from tests.service.batch.conftest import Factory
from tests.support.batch import finished, jpeg, kinds, make_tree, run_batch


def _import(directory: str = "library", **fields: object) -> bpb.BatchSpec:
    return bpb.BatchSpec(
        import_directory=bpb.ImportOperation(directory=directory, recursive=True),
        **fields,  # type: ignore[arg-type]
    )


async def _all_items(suite: object, **query: object) -> list[cpb.CatalogItem]:
    items: list[cpb.CatalogItem] = []
    token = ""
    while True:
        reply = await suite.catalog.QueryItems(  # type: ignore[attr-defined]
            cpb.QueryItemsRequest(page_size=97, page_token=token, **query)  # type: ignore[arg-type]
        )
        items.extend(reply.items)
        token = reply.page.next_page_token
        if not token:
            return items


async def test_import_of_a_tree_then_incremental_reimport(batch_suite: Factory) -> None:
    async with batch_suite() as suite:
        paths = make_tree(suite.media, images=300, videos=3)
        events = await run_batch(suite.batch, _import())
        batch = finished(events)
        assert batch.state == bpb.BATCH_STATE_SUCCEEDED
        assert (batch.total, batch.done, batch.failed, batch.skipped) == (303, 303, 0, 0)
        sequences = [e.sequence for e in events]
        assert sequences == list(range(1, len(events) + 1))
        assert kinds(events).count("item_done") == 303
        assert kinds(events)[0] == "accepted"
        done_paths = sorted(e.item_done.path for e in events if e.WhichOneof("event") == "item_done")
        assert done_paths == paths  # notes.txt is not media

        items = await _all_items(suite)
        assert [i.path for i in items] == paths  # ordered by path, every page
        by_path = {i.path: i for i in items}
        photo = by_path["library/2021/01/img0001.jpg"]
        assert (photo.format, photo.kind, photo.width, photo.height) == ("JPEG", cpb.MEDIA_KIND_IMAGE, 96, 64)
        assert photo.content_hash.startswith("sha256:")
        assert photo.status == cpb.REVIEW_STATUS_PENDING
        assert photo.exif.make == "TestCam"
        assert photo.size_bytes == (suite.media / photo.path).stat().st_size
        clip = by_path["library/clips/clip0.mp4"]
        assert clip.kind == cpb.MEDIA_KIND_VIDEO
        assert clip.format == "mp4"
        assert (clip.width, clip.height) == (160, 120)
        assert clip.duration.ToNanoseconds() > 0

        videos = await _all_items(suite, filter=cpb.CatalogFilter(kind=cpb.MEDIA_KIND_VIDEO))
        assert len(videos) == 3
        pngs = await _all_items(suite, filter=cpb.CatalogFilter(formats=["PNG"]), order_by="size desc")
        assert len(pngs) == 60
        sizes = [i.size_bytes for i in pngs]
        assert sizes == sorted(sizes, reverse=True)

        # Change one file (new bytes, new size), touch nothing else: only it is probed again.
        changed = suite.media / "library/2022/02/img0002.jpg"
        changed.write_bytes(jpeg(9999, width=120, height=80))
        os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
        again = await run_batch(suite.batch, _import())
        batch = finished(again)
        assert batch.state == bpb.BATCH_STATE_SUCCEEDED
        assert (batch.done, batch.skipped, batch.failed) == (1, 302, 0)
        redone = [e.item_done.path for e in again if e.WhichOneof("event") == "item_done"]
        relative = changed.relative_to(suite.media).as_posix()
        assert redone == [relative]
        skipped = {e.item_skipped.reason for e in again if e.WhichOneof("event") == "item_skipped"}
        assert skipped == {"unchanged"}
        item = (await _all_items(suite, filter=cpb.CatalogFilter(path_contains=relative.upper())))[0]
        assert (item.width, item.height) == (120, 80)
        assert item.created_at.ToNanoseconds() < item.updated_at.ToNanoseconds()

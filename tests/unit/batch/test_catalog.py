"""Catalog data: filters, orderings (index members sort like the values), changes, globs, slots."""

from __future__ import annotations

import asyncio

import pytest

from services.batch.catalog import (
    CatalogFilter,
    CatalogItem,
    HistoryEntry,
    OutputRef,
    index_members,
    item_id,
    normalise_tags,
    parse_order,
)
from services.batch.changes import Change, Media, derive
from services.batch.selection import compile_glob
from services.batch.slots import PrioritySlots
from services.runtime.errors import FailedPrecondition, InvalidArgument


def _item(path: str = "a/b.jpg", **fields: object) -> CatalogItem:
    return CatalogItem(id=item_id(path), path=path, **fields)  # type: ignore[arg-type]


def test_items_survive_json_with_history_and_outputs() -> None:
    output = OutputRef("k" * 64, "ab/cd/k.webp", "image/webp", 123, 64, 48)
    item = _item(
        tags=("sea", "sun"), history=(HistoryEntry("thumbnail", "preset=tiny", 5, "b1", output),),
        exif={"make": "Cam"}, taken_at_ns=7,
    )  # fmt: skip
    assert CatalogItem.from_json(item.to_json()) == item


@pytest.mark.parametrize("order", ["size", "modified", "taken", "quality"])
def test_index_members_sort_like_the_values(order: str) -> None:
    values = [0, 1, 9, 10, 255, 256, 10**12, 10**18]
    items = []
    for index, value in enumerate(values):
        by_order: dict[str, dict[str, object]] = {
            "size": {"size_bytes": value},
            "modified": {"mtime_ns": value - 10**15},  # times before 1970 too
            "taken": {"taken_at_ns": value},
            "quality": {"quality_score": (0, 0.001, 0.5, 1, 49.999, 50, 99.9, 100)[index]},
        }
        items.append(_item(f"p{index}.jpg", **by_order[order]))
    position = ("path", "size", "modified", "taken", "quality").index(order)
    members = [index_members(i)[position] for i in items]
    assert sorted(members) == members


def test_filters_match_every_set_field() -> None:
    item = _item("2024/Beach/x.JPG", status="approved", category="travel", tags=("sea", "sun"), format="JPEG",
                 kind="image", size_bytes=500, mtime_ns=1000)  # fmt: skip
    assert CatalogFilter().matches(item)
    assert CatalogFilter(statuses=("approved",), categories=("travel",), tags=("sea",), formats=("jpeg",),
                         kind="image", min_size_bytes=500, max_size_bytes=500, since_ns=1000, until_ns=1001,
                         path_contains="beach").matches(item)  # fmt: skip
    for wrong in (
        CatalogFilter(statuses=("pending",)),
        CatalogFilter(tags=("sea", "snow")),
        CatalogFilter(kind="video"),
        CatalogFilter(max_size_bytes=499),
        CatalogFilter(until_ns=1000),
        CatalogFilter(path_contains="mountain"),
    ):
        assert not wrong.matches(item)
    trashed = _item(status="trashed")
    assert not CatalogFilter().matches(trashed)  # hidden unless asked for
    assert CatalogFilter(statuses=("trashed",)).matches(trashed)


def test_bad_filters_orders_and_tags_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        CatalogFilter(min_size_bytes=10, max_size_bytes=5).check("filter")
    assert caught.value.field == "filter.max_size_bytes"
    with pytest.raises(InvalidArgument):
        CatalogFilter(since_ns=5, until_ns=5).check()
    assert parse_order("size desc").descending
    assert parse_order("").index == "path"
    with pytest.raises(InvalidArgument) as caught:
        parse_order("colour")
    assert caught.value.field == "order_by"
    assert normalise_tags([" Sea ", "sea", "SUN"], "tags") == ("sea", "sun")
    with pytest.raises(InvalidArgument) as caught:
        normalise_tags(["ok", "x" * 65], "tags")
    assert caught.value.field == "tags[1]"


def test_changes_derive_the_next_record() -> None:
    media = Media(10, 20, "sha256:aa", "JPEG", "image", 4, 3)
    fresh = derive(
        None, Change("import", path="a/b.jpg", media=media), batch_id="b", history_kept=3, max_tags=4
    )
    assert fresh is not None
    assert fresh.status == "pending"
    assert fresh.id == item_id("a/b.jpg")
    approved = derive(fresh, Change("approve"), batch_id="b", history_kept=3, max_tags=4)
    assert approved is not None
    trashed = derive(approved, Change("trash"), batch_id="b", history_kept=3, max_tags=4)
    assert trashed is not None
    assert trashed.status == "trashed"
    restored = derive(trashed, Change("restore"), batch_id="b", history_kept=3, max_tags=4)
    assert restored is not None
    assert restored.status == "approved"
    with pytest.raises(FailedPrecondition):
        derive(restored, Change("restore"), batch_id="b", history_kept=3, max_tags=4)
    with pytest.raises(FailedPrecondition):
        derive(restored, Change("purge"), batch_id="b", history_kept=3, max_tags=4)
    assert derive(trashed, Change("purge"), batch_id="b", history_kept=3, max_tags=4) is None
    with pytest.raises(FailedPrecondition):
        derive(fresh, Change("tag", tags=("a", "b", "c", "d", "e")), batch_id="b", history_kept=3, max_tags=4)
    kept = fresh
    for n in range(5):
        step = derive(kept, Change("output", operation="thumbnail", parameters=str(n)), batch_id="b",
                      history_kept=3, max_tags=4)  # fmt: skip
        assert step is not None
        kept = step
    assert [h.parameters for h in kept.history] == ["2", "3", "4"]
    reimported = derive(
        kept, Change("import", path="a/b.jpg", media=media), batch_id="c", history_kept=3, max_tags=4
    )
    assert reimported is not None
    assert reimported.history == kept.history  # re-import keeps the review


def test_change_round_trip() -> None:
    change = Change("output", path="x", operation="thumbnail", outputs=(OutputRef("k", "p", "image/png", 1),),
                    quality_score=50.0)  # fmt: skip
    assert Change.from_json(change.to_json()) == change


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("**/*.jpg", "a.jpg", True),
        ("**/*.jpg", "x/y/a.JPG", True),
        ("*.jpg", "x/a.jpg", False),
        ("x/*", "x/y/z.png", False),
        ("x/**", "x/y/z.png", True),
        ("img?.png", "img1.png", True),
        ("img[!0-4].png", "img7.png", True),
        ("img[!0-4].png", "img3.png", False),
    ],
)
def test_globs(glob: str, path: str, matches: bool) -> None:
    assert bool(compile_glob(glob).match(path)) is matches


async def test_slots_go_to_the_highest_priority_waiter_first() -> None:
    slots = PrioritySlots(1)
    await slots.acquire(2)
    order: list[str] = []

    async def take(name: str, priority: int) -> None:
        await slots.acquire(priority)
        order.append(name)
        slots.release()

    tasks = [
        asyncio.create_task(take(n, p)) for n, p in (("low", 1), ("normal", 2), ("high", 3), ("high2", 3))
    ]
    await asyncio.sleep(0)
    assert slots.waiting == 4
    slots.release()
    await asyncio.gather(*tasks)
    assert order == ["high", "high2", "normal", "low"]
    assert slots.used == 0

"""What a batch does to one catalog item, as data: a :class:`Change` is derived from an item's
work (a probe, an output, a review action) and applied to the item as it is in the catalog at
record time. Keeping the change (not only the new record) lets a conflicting write be re-derived
from the newer record instead of overwriting it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from services.batch.catalog import CatalogItem, HistoryEntry, OutputRef, item_id
from services.runtime.errors import FailedPrecondition

__all__ = ["Change", "Media", "derive"]


@dataclass(frozen=True)
class Media:
    """What a probe found of a file (the catalog's metadata fields)."""

    size_bytes: int
    mtime_ns: int
    content_hash: str
    format: str
    kind: str
    width: int
    height: int
    duration_s: float = 0.0
    exif: dict[str, Any] = field(default_factory=dict)
    taken_at_ns: int = 0


@dataclass(frozen=True)
class Change:
    """One item's change. ``op``: import, probe, output, tag, untag, categorize, approve, reject,
    trash, restore, purge."""

    op: str
    path: str = ""
    media: Media | None = None
    tags: tuple[str, ...] = ()
    category: str = ""
    operation: str = ""
    parameters: str = ""
    outputs: tuple[OutputRef, ...] = ()
    quality_score: float | None = None

    def to_json(self) -> str:
        """Compact JSON."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Change:
        """The change stored as ``text``."""
        data = json.loads(text)
        data["media"] = Media(**data["media"]) if data.get("media") else None
        data["tags"] = tuple(data.get("tags") or ())
        data["outputs"] = tuple(OutputRef(**o) for o in data.get("outputs") or ())
        return cls(**data)


def _with_media(item: CatalogItem, media: Media) -> CatalogItem:
    return item.changed(
        size_bytes=media.size_bytes,
        mtime_ns=media.mtime_ns,
        content_hash=media.content_hash,
        format=media.format,
        kind=media.kind,
        width=media.width,
        height=media.height,
        duration_s=media.duration_s,
        exif=dict(media.exif),
        taken_at_ns=media.taken_at_ns,
    )


@dataclass(frozen=True)
class _Context:
    batch_id: str
    history_kept: int
    max_tags: int
    now: int


def _probe(item: CatalogItem, change: Change, ctx: _Context) -> CatalogItem:
    assert change.media is not None  # noqa: S101 (narrows a type: an invariant of the code above, not a check of input)
    updated = _with_media(item, change.media)
    return updated.with_history(HistoryEntry("probe", "", ctx.now, ctx.batch_id), ctx.history_kept)


def _output(item: CatalogItem, change: Change, ctx: _Context) -> CatalogItem:
    for output in change.outputs or (None,):
        entry = HistoryEntry(change.operation, change.parameters, ctx.now, ctx.batch_id, output)
        item = item.with_history(entry, ctx.history_kept)
    if change.quality_score is not None:
        item = item.changed(quality_score=change.quality_score, analysed=True)
    return item


def _tag(item: CatalogItem, change: Change, ctx: _Context) -> CatalogItem:
    tags = tuple(sorted(set(item.tags) | set(change.tags)))
    if len(tags) > ctx.max_tags:
        raise FailedPrecondition(
            f"item {item.path!r} would carry {len(tags)} tags, more than BATCH_MAX_TAGS={ctx.max_tags}"
        )
    return item.changed(tags=tags)


def _review(status: str) -> Callable[[CatalogItem, Change, _Context], CatalogItem]:
    def review(item: CatalogItem, change: Change, ctx: _Context) -> CatalogItem:
        if item.status == "trashed":
            raise FailedPrecondition(f"item {item.path!r} is in the trash: restore it first")
        return item.changed(status=status)

    return review


def _trash(item: CatalogItem, change: Change, ctx: _Context) -> CatalogItem:
    if item.status == "trashed":
        return item
    return item.changed(status="trashed", previous_status=item.status)


def _restore(item: CatalogItem, change: Change, ctx: _Context) -> CatalogItem:
    if item.status != "trashed":
        raise FailedPrecondition(f"item {item.path!r} is not in the trash ({item.status})")
    return item.changed(status=item.previous_status or "pending", previous_status="")


def _purge(item: CatalogItem, change: Change, ctx: _Context) -> None:
    if item.status != "trashed":
        raise FailedPrecondition(
            f"item {item.path!r} is not in the trash ({item.status}): only trashed items are purged"
        )


_APPLY: dict[str, Callable[[CatalogItem, Change, _Context], CatalogItem | None]] = {
    "probe": _probe,
    "output": _output,
    "tag": _tag,
    "untag": lambda item, change, ctx: item.changed(tags=tuple(t for t in item.tags if t not in change.tags)),
    "categorize": lambda item, change, ctx: item.changed(category=change.category),
    "approve": _review("approved"),
    "reject": _review("rejected"),
    "trash": _trash,
    "restore": _restore,
    "purge": _purge,
}


def derive(
    current: CatalogItem | None, change: Change, *, batch_id: str, history_kept: int, max_tags: int
) -> CatalogItem | None:
    """The item after ``change`` (None: removed). FAILED_PRECONDITION when the change cannot apply to
    the item as it is now (restoring an item that is not in the trash, say)."""
    now = time.time_ns()
    if change.op == "import":
        assert change.media is not None  # noqa: S101 (narrows a type: an invariant of the code above, not a check of input)
        if current is None:
            current = CatalogItem(id=item_id(change.path), path=change.path, created_at_ns=now)
        return _with_media(current, change.media)
    if current is None:
        raise FailedPrecondition(f"item {change.path!r} is no longer in the catalog")
    if change.op not in _APPLY:
        raise ValueError(f"unknown change {change.op!r}")
    return _APPLY[change.op](current, change, _Context(batch_id, history_kept, max_tags, now))

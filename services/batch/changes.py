"""What a batch does to one catalog item, as data: a :class:`Change` is derived from an item's
work (a probe, an output, a review action) and applied to the item as it is in the catalog at
record time. Keeping the change (not only the new record) lets a conflicting write be re-derived
from the newer record instead of overwriting it."""

from __future__ import annotations

import json
import time
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


def derive(
    current: CatalogItem | None, change: Change, *, batch_id: str, history_kept: int, max_tags: int
) -> CatalogItem | None:
    """The item after ``change`` (None: removed). FAILED_PRECONDITION when the change cannot apply to
    the item as it is now (restoring an item that is not in the trash, say)."""
    now = time.time_ns()
    if change.op == "import":
        assert change.media is not None
        if current is None:
            fresh = CatalogItem(id=item_id(change.path), path=change.path, created_at_ns=now)
            return _with_media(fresh, change.media)
        return _with_media(current, change.media)
    if current is None:
        raise FailedPrecondition(f"item {change.path!r} is no longer in the catalog")
    if change.op == "probe":
        assert change.media is not None
        updated = _with_media(current, change.media)
        return updated.with_history(HistoryEntry("probe", "", now, batch_id), history_kept)
    if change.op == "output":
        updated = current
        for output in change.outputs or (None,):
            entry = HistoryEntry(change.operation, change.parameters, now, batch_id, output)
            updated = updated.with_history(entry, history_kept)
        if change.quality_score is not None:
            updated = updated.changed(quality_score=change.quality_score, analysed=True)
        return updated
    if change.op == "tag":
        tags = tuple(sorted(set(current.tags) | set(change.tags)))
        if len(tags) > max_tags:
            raise FailedPrecondition(
                f"item {current.path!r} would carry {len(tags)} tags, more than BATCH_MAX_TAGS={max_tags}"
            )
        return current.changed(tags=tags)
    if change.op == "untag":
        return current.changed(tags=tuple(t for t in current.tags if t not in change.tags))
    if change.op == "categorize":
        return current.changed(category=change.category)
    if change.op in ("approve", "reject"):
        if current.status == "trashed":
            raise FailedPrecondition(f"item {current.path!r} is in the trash: restore it first")
        return current.changed(status="approved" if change.op == "approve" else "rejected")
    if change.op == "trash":
        if current.status == "trashed":
            return current
        return current.changed(status="trashed", previous_status=current.status)
    if change.op == "restore":
        if current.status != "trashed":
            raise FailedPrecondition(f"item {current.path!r} is not in the trash ({current.status})")
        return current.changed(status=current.previous_status or "pending", previous_status="")
    if change.op == "purge":
        if current.status != "trashed":
            raise FailedPrecondition(
                f"item {current.path!r} is not in the trash ({current.status}): only trashed items are purged"
            )
        return None
    raise ValueError(f"unknown change {change.op!r}")

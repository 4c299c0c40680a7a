"""The catalog's data: items, filters, orderings, and the index entries an item has.

Plain data, no Redis and no gRPC. An item is stored as compact JSON; each ordering is a Redis
sorted set whose members sort lexicographically in that order (fixed-width hex of the value, then
the item id), so every query walks one index from a cursor without scores or offsets.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from services.runtime.errors import InvalidArgument

__all__ = [
    "ORDERS",
    "STATUSES",
    "CatalogFilter",
    "CatalogItem",
    "HistoryEntry",
    "OrderBy",
    "OutputRef",
    "index_members",
    "item_id",
    "parse_order",
]

STATUSES = ("pending", "approved", "rejected", "trashed")
KINDS = ("", "image", "video")
# Index names, in the order an item's members are kept (see index_members).
ORDERS = ("path", "size", "modified", "taken", "quality")
_OFFSET = 1 << 62  # times before 1970 stay positive in the fixed-width encoding


def item_id(path: str) -> str:
    """The stable id of the item at ``path`` (relative to the media root)."""
    return hashlib.sha256(path.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class OutputRef:
    """An output recorded in the catalog (a stored file of the derived store)."""

    content_key: str
    stored_path: str
    media_type: str
    size_bytes: int
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class HistoryEntry:
    """One operation recorded on an item."""

    operation: str
    parameters: str
    at_ns: int
    batch_id: str
    output: OutputRef | None = None


@dataclass(frozen=True)
class CatalogItem:
    """A media item of the catalog."""

    id: str
    path: str
    size_bytes: int = 0
    mtime_ns: int = 0
    content_hash: str = ""
    format: str = ""
    kind: str = ""
    width: int = 0
    height: int = 0
    duration_s: float = 0.0
    exif: dict[str, Any] = field(default_factory=dict)
    taken_at_ns: int = 0
    status: str = "pending"
    previous_status: str = ""
    category: str = ""
    tags: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    created_at_ns: int = 0
    updated_at_ns: int = 0
    quality_score: float = 0.0
    analysed: bool = False

    def to_json(self) -> str:
        """Compact JSON (what Redis keeps)."""
        data = asdict(self)
        data["tags"] = list(self.tags)
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> CatalogItem:
        """The item stored as ``text``."""
        data = json.loads(text)
        data["tags"] = tuple(data.get("tags") or ())
        data["history"] = tuple(
            HistoryEntry(**{**h, "output": OutputRef(**h["output"]) if h.get("output") else None})
            for h in data.get("history") or ()
        )
        return cls(**data)

    @property
    def sort_time_ns(self) -> int:
        """When it was taken (EXIF), or else when it was modified."""
        return self.taken_at_ns or self.mtime_ns

    def changed(self, **fields: Any) -> CatalogItem:
        """A copy with ``fields`` changed and updated_at set to now."""
        return replace(self, updated_at_ns=time.time_ns(), **fields)

    def with_history(self, entry: HistoryEntry, keep: int) -> CatalogItem:
        """A copy with ``entry`` appended (oldest dropped beyond ``keep``)."""
        return self.changed(history=(*self.history, entry)[-keep:])


def _hex(value: int) -> str:
    return f"{max(0, value) & ((1 << 64) - 1):016x}"


def index_members(item: CatalogItem) -> list[str]:
    """The item's member in each ordering index, in ORDERS order."""
    return [
        f"{item.path}\x00{item.id}",
        f"{_hex(item.size_bytes)}\x00{item.id}",
        f"{_hex(item.mtime_ns + _OFFSET)}\x00{item.id}",
        f"{_hex(item.sort_time_ns + _OFFSET)}\x00{item.id}",
        f"{_hex(round(item.quality_score * 1000))}\x00{item.id}",
    ]


@dataclass(frozen=True)
class OrderBy:
    """An ordering of query results."""

    index: str = "path"
    descending: bool = False


def parse_order(text: str, field_name: str = "order_by") -> OrderBy:
    """``"size desc"`` -> OrderBy("size", True); INVALID_ARGUMENT for anything else."""
    parts = text.strip().lower().split()
    if not parts:
        return OrderBy()
    if parts[0] not in ORDERS or len(parts) > 2 or (len(parts) == 2 and parts[1] not in ("asc", "desc")):
        raise InvalidArgument(
            f"{field_name} {text!r} is not an ordering: use one of {', '.join(ORDERS)}, "
            "optionally followed by ' desc'",
            field=field_name,
        )
    return OrderBy(parts[0], len(parts) == 2 and parts[1] == "desc")


@dataclass(frozen=True)
class CatalogFilter:
    """Every set field must match (AND); empty statuses mean every status but trashed."""

    statuses: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    kind: str = ""
    min_size_bytes: int = 0
    max_size_bytes: int = 0
    since_ns: int | None = None
    until_ns: int | None = None
    path_contains: str = ""

    def check(self, field_name: str = "filter") -> CatalogFilter:
        """The filter, or INVALID_ARGUMENT naming the field at fault."""
        for status in self.statuses:
            if status not in STATUSES:
                raise InvalidArgument(
                    f"{field_name}.statuses: unknown status {status!r}", field=f"{field_name}.statuses"
                )
        if self.kind not in KINDS:
            raise InvalidArgument(
                f"{field_name}.kind: unknown kind {self.kind!r}", field=f"{field_name}.kind"
            )
        if self.min_size_bytes < 0 or self.max_size_bytes < 0:
            raise InvalidArgument(
                f"{field_name}: sizes must not be negative", field=f"{field_name}.min_size_bytes"
            )
        if self.max_size_bytes and self.max_size_bytes < self.min_size_bytes:
            raise InvalidArgument(
                f"{field_name}.max_size_bytes ({self.max_size_bytes}) is below min_size_bytes "
                f"({self.min_size_bytes})",
                field=f"{field_name}.max_size_bytes",
            )
        if self.since_ns is not None and self.until_ns is not None and self.until_ns <= self.since_ns:
            raise InvalidArgument(
                f"{field_name}.until must be after {field_name}.since", field=f"{field_name}.until"
            )
        if len(self.path_contains) > 1024:
            raise InvalidArgument(
                f"{field_name}.path_contains is longer than 1024 characters",
                field=f"{field_name}.path_contains",
            )
        return self

    def matches(self, item: CatalogItem) -> bool:
        """Whether the item passes every set field."""
        when = item.sort_time_ns
        return (
            (item.status in self.statuses if self.statuses else item.status != "trashed")
            and (not self.categories or item.category in self.categories)
            and (not self.tags or set(self.tags).issubset(item.tags))
            and (not self.formats or item.format.lower() in {f.lower() for f in self.formats})
            and (not self.kind or item.kind == self.kind)
            and item.size_bytes >= self.min_size_bytes
            and (not self.max_size_bytes or item.size_bytes <= self.max_size_bytes)
            and (self.since_ns is None or when >= self.since_ns)
            and (self.until_ns is None or when < self.until_ns)
            and (not self.path_contains or self.path_contains.lower() in item.path.lower())
        )


def normalise_tags(tags: Sequence[str], field_name: str) -> tuple[str, ...]:
    """Tags lower-cased and checked (1-64 characters, no control characters); INVALID_ARGUMENT otherwise."""
    found: list[str] = []
    for index, raw in enumerate(tags):
        tag = raw.strip().lower()
        if not 1 <= len(tag) <= 64 or any(ord(c) < 32 for c in tag):
            raise InvalidArgument(
                f"{field_name}[{index}] {raw!r} is not a tag: 1-64 characters, no control characters",
                field=f"{field_name}[{index}]",
            )
        if tag not in found:
            found.append(tag)
    return tuple(found)

"""Batches as data: what a batch is asked to do (:class:`BatchSpec`), where it is
(:class:`BatchRecord`), and the events it reports."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from services.batch.catalog import CatalogFilter

__all__ = [
    "ACTIVE",
    "PRIORITIES",
    "TERMINAL",
    "BatchRecord",
    "BatchSpec",
    "ImportParams",
    "Selection",
    "event",
]

# States, as BatchState names without the prefix, lower-case.
TERMINAL = frozenset({"succeeded", "completed_with_failures", "failed", "cancelled"})
ACTIVE = frozenset({"queued", "running", "paused", "committing", "rolling_back"})
PRIORITIES = {"low": 1, "normal": 2, "high": 3}


@dataclass(frozen=True)
class Selection:
    """Which items: catalog ids, media paths, or a catalog query (import has none)."""

    kind: str = ""  # ids | paths | query | ""
    values: tuple[str, ...] = ()
    filter: CatalogFilter = field(default_factory=CatalogFilter)


@dataclass(frozen=True)
class ImportParams:
    """An import: which directory, how deep, which files."""

    directory: str = ""
    recursive: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    force: bool = False


@dataclass(frozen=True)
class BatchSpec:
    """What a batch does, checked. ``kind``: import, process or catalog; ``operation`` names the
    processing operation (thumbnail, convert ...) or catalog action (tag, purge ...)."""

    kind: str
    operation: str
    atomic: bool
    max_failures: int  # -1: unlimited
    concurrency: int
    priority: int
    item_deadline_s: float
    idempotency_key: str = ""
    label: str = ""
    selection: Selection = field(default_factory=Selection)
    importing: ImportParams = field(default_factory=ImportParams)
    tags: tuple[str, ...] = ()
    category: str = ""
    raw: bytes = b""  # the spec as the caller sent it (protobuf), for GetBatch and the workers


@dataclass
class BatchRecord:
    """A batch as journaled in Redis."""

    id: str
    state: str
    spec: bytes
    kind: str
    operation: str
    atomic: bool
    priority: int
    max_failures: int
    concurrency: int
    item_deadline_s: float
    label: str = ""
    total: int = -1
    done: int = 0
    failed: int = 0
    skipped: int = 0
    created_ns: int = 0
    started_ns: int = 0
    finished_ns: int = 0
    seq: int = 0
    reason: str = ""
    resolved: bool = False
    catalog_applied: bool = False
    cancel_requested: str = ""

    _INTS = ("total", "done", "failed", "skipped", "created_ns", "started_ns", "finished_ns", "seq")

    def fields(self) -> dict[str, str | bytes]:
        """The Redis hash fields of the record."""
        return {
            "state": self.state,
            "spec": self.spec,
            "kind": self.kind,
            "operation": self.operation,
            "atomic": "1" if self.atomic else "0",
            "priority": str(self.priority),
            "max_failures": str(self.max_failures),
            "concurrency": str(self.concurrency),
            "item_deadline_s": repr(self.item_deadline_s),
            "label": self.label,
            "total": str(self.total),
            "done": str(self.done),
            "failed": str(self.failed),
            "skipped": str(self.skipped),
            "created_ns": str(self.created_ns),
            "started_ns": str(self.started_ns),
            "finished_ns": str(self.finished_ns),
            "reason": self.reason,
            "resolved": "1" if self.resolved else "0",
            "catalog_applied": "1" if self.catalog_applied else "0",
            "cancel_requested": self.cancel_requested,
        }

    @classmethod
    def from_fields(cls, batch_id: str, raw: dict[bytes, bytes]) -> BatchRecord:
        """The record from its Redis hash."""
        text = {k.decode(): v for k, v in raw.items()}

        def s(name: str, default: str = "") -> str:
            value = text.get(name)
            return value.decode() if value is not None else default

        return cls(
            id=batch_id,
            state=s("state", "queued"),
            spec=text.get("spec", b""),
            kind=s("kind"),
            operation=s("operation"),
            atomic=s("atomic") == "1",
            priority=int(s("priority", "2")),
            max_failures=int(s("max_failures", "-1")),
            concurrency=int(s("concurrency", "1")),
            item_deadline_s=float(s("item_deadline_s", "60")),
            label=s("label"),
            total=int(s("total", "-1")),
            done=int(s("done", "0")),
            failed=int(s("failed", "0")),
            skipped=int(s("skipped", "0")),
            created_ns=int(s("created_ns", "0")),
            started_ns=int(s("started_ns", "0")),
            finished_ns=int(s("finished_ns", "0")),
            seq=int(s("seq", "0")),
            reason=s("reason"),
            resolved=s("resolved") == "1",
            catalog_applied=s("catalog_applied") == "1",
            cancel_requested=s("cancel_requested"),
        )

    def snapshot(self) -> dict[str, Any]:
        """The record as JSON-ready data (the finished event carries it), without the spec bytes."""
        data: dict[str, Any] = {k: v for k, v in self.fields().items() if k != "spec"}
        data["id"] = self.id
        data["seq"] = self.seq
        return data


def event(kind: str, **data: Any) -> dict[str, Any]:
    """An event: its kind ``k``, its time ``t`` (ns) and its data."""
    return {"k": kind, "t": time.time_ns(), **data}

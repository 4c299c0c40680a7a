"""Proto <-> domain for the batch and catalog services: every field from outside is checked here,
with the field named, before it reaches the domain."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from mediasuite.common.v1 import exif_pb2, media_pb2, status_pb2
from services.batch.catalog import CatalogFilter, CatalogItem, normalise_tags
from services.batch.config import Execution
from services.batch.model import BatchRecord, BatchSpec, ImportParams, Selection
from services.batch.process_worker import operation_name
from services.batch.selection import compile_glob
from services.batch.summary import Summary
from services.runtime.errors import InvalidArgument, LimitExceeded

__all__ = [
    "batch_proto",
    "event_proto",
    "filter_of",
    "item_proto",
    "spec_of",
    "states_of",
    "summary_proto",
]

_STATUS_NAMES = {
    cpb.REVIEW_STATUS_PENDING: "pending",
    cpb.REVIEW_STATUS_APPROVED: "approved",
    cpb.REVIEW_STATUS_REJECTED: "rejected",
    cpb.REVIEW_STATUS_TRASHED: "trashed",
}
_STATUS_ENUMS = {name: number for number, name in _STATUS_NAMES.items()}
_KIND_NAMES = {cpb.MEDIA_KIND_UNSPECIFIED: "", cpb.MEDIA_KIND_IMAGE: "image", cpb.MEDIA_KIND_VIDEO: "video"}
_KIND_ENUMS = {name: number for number, name in _KIND_NAMES.items()}
_ACTIONS = {
    bpb.CATALOG_ACTION_TAG: "tag",
    bpb.CATALOG_ACTION_UNTAG: "untag",
    bpb.CATALOG_ACTION_CATEGORIZE: "categorize",
    bpb.CATALOG_ACTION_APPROVE: "approve",
    bpb.CATALOG_ACTION_REJECT: "reject",
    bpb.CATALOG_ACTION_TRASH: "trash",
    bpb.CATALOG_ACTION_RESTORE: "restore",
    bpb.CATALOG_ACTION_PURGE: "purge",
}


def _ts(ns: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


def state_enum(state: str) -> int:
    """BatchState number of a state name."""
    return int(bpb.BatchState.Value(f"BATCH_STATE_{state.upper()}"))


def states_of(values: Any) -> list[str]:
    """State names of BatchState numbers (INVALID_ARGUMENT for unknown ones)."""
    names = []
    for index, value in enumerate(values):
        if value not in bpb.BatchState.values() or value == bpb.BATCH_STATE_UNSPECIFIED:
            raise InvalidArgument(f"states[{index}] {value} is not a batch state", field=f"states[{index}]")
        names.append(bpb.BatchState.Name(value).removeprefix("BATCH_STATE_").lower())
    return names


# ---- filters and items ---------------------------------------------------------------------------


def filter_of(message: cpb.CatalogFilter, field: str) -> CatalogFilter:
    """The domain filter of a CatalogFilter, checked."""
    statuses = []
    for index, status in enumerate(message.statuses):
        if status not in _STATUS_NAMES:
            raise InvalidArgument(
                f"{field}.statuses[{index}] {status} is not a review status",
                field=f"{field}.statuses[{index}]",
            )
        statuses.append(_STATUS_NAMES[status])
    if message.kind not in _KIND_NAMES:
        raise InvalidArgument(f"{field}.kind {message.kind} is not a media kind", field=f"{field}.kind")
    return CatalogFilter(
        statuses=tuple(statuses),
        categories=tuple(message.categories),
        tags=tuple(t.strip().lower() for t in message.tags),
        formats=tuple(message.formats),
        kind=_KIND_NAMES[message.kind],
        min_size_bytes=message.min_size_bytes,
        max_size_bytes=message.max_size_bytes,
        since_ns=_time_ns(message, "since", field),
        until_ns=_time_ns(message, "until", field),
        path_contains=message.path_contains,
    ).check(field)


def _time_ns(message: cpb.CatalogFilter, name: str, field: str) -> int | None:
    """A Timestamp field in nanoseconds (None when unset); InvalidArgument when it is not a valid time."""
    if not message.HasField(name):  # type: ignore[arg-type]
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    try:
        return int(stamp.ToNanoseconds())
    except ValueError as error:
        raise InvalidArgument(
            f"{field}.{name} is not a valid time ({error}): use 0001-01-01 to 9999-12-31, nanos 0-999999999",
            field=f"{field}.{name}",
        ) from None


def _output_proto(output: Any) -> media_pb2.Output:
    return media_pb2.Output(
        stored_path=output.stored_path,
        content_key=output.content_key,
        media_type=output.media_type,
        size_bytes=output.size_bytes,
        width=output.width,
        height=output.height,
    )


def item_proto(item: CatalogItem) -> cpb.CatalogItem:
    """A catalog item as a message."""
    message = cpb.CatalogItem(
        id=item.id,
        path=item.path,
        size_bytes=item.size_bytes,
        modified_at=_ts(item.mtime_ns),
        content_hash=item.content_hash,
        format=item.format,
        kind=_KIND_ENUMS.get(item.kind, cpb.MEDIA_KIND_UNSPECIFIED),
        width=item.width,
        height=item.height,
        status=_STATUS_ENUMS.get(item.status, cpb.REVIEW_STATUS_UNSPECIFIED),
        category=item.category,
        tags=sorted(item.tags),
        created_at=_ts(item.created_at_ns),
        updated_at=_ts(item.updated_at_ns),
        quality_score=item.quality_score,
    )
    if item.kind == "video":
        message.duration.CopyFrom(_duration(item.duration_s))
    if item.exif:
        from google.protobuf import json_format

        message.exif.CopyFrom(
            json_format.ParseDict(item.exif, exif_pb2.ExifSummary(), ignore_unknown_fields=True)
        )
    for entry in item.history:
        history = message.history.add(
            operation=entry.operation,
            parameters=entry.parameters,
            at=_ts(entry.at_ns),
            batch_id=entry.batch_id,
        )
        if entry.output is not None:
            history.output.CopyFrom(_output_proto(entry.output))
    return message


def summary_proto(summary: Summary) -> cpb.GetSummaryResponse:
    """A summary as a message."""

    def bucket(pair: tuple[int, int]) -> cpb.SummaryBucket:
        return cpb.SummaryBucket(count=pair[0], bytes=pair[1])

    reply = cpb.GetSummaryResponse(
        total=bucket(summary.total), computed_at=_ts(summary.computed_ns), cached=summary.cached
    )
    for source, target in (
        (summary.by_format, reply.by_format),
        (summary.by_status, reply.by_status),
        (summary.by_category, reply.by_category),
    ):
        for key, pair in source.items():
            target[key].CopyFrom(bucket(pair))
    return reply


# ---- specs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operation:
    kind: str
    operation: str
    importing: ImportParams = field(default_factory=ImportParams)
    tags: tuple[str, ...] = ()
    category: str = ""


def _import_of(op: bpb.ImportOperation) -> _Operation:
    for name, globs in (("include", op.include), ("exclude", op.exclude)):
        for index, glob in enumerate(globs):
            try:
                if not glob or len(glob) > 512:
                    raise ValueError(glob)
                compile_glob(glob)
            except (ValueError, re.error):
                raise InvalidArgument(
                    f'spec.import_directory.{name}[{index}] {glob!r} is not a glob ("**/*.jpg")',
                    field=f"spec.import_directory.{name}[{index}]",
                ) from None
    params = ImportParams(op.directory, op.recursive, tuple(op.include), tuple(op.exclude), op.force)
    return _Operation("import", "import", importing=params)


def _catalog_of(op: bpb.CatalogOperation) -> _Operation:
    if op.action not in _ACTIONS:
        raise InvalidArgument(
            f"spec.catalog.action {op.action} is not a catalog action (tag, untag, categorize, approve, "
            "reject, trash, restore, purge)",
            field="spec.catalog.action",
        )
    operation = _ACTIONS[op.action]
    tags: tuple[str, ...] = ()
    category = ""
    if operation in ("tag", "untag"):
        tags = normalise_tags(op.tags, "spec.catalog.tags")
        if not tags:
            raise InvalidArgument(
                f"spec.catalog.tags is empty: {operation} needs tags", field="spec.catalog.tags"
            )
    elif op.tags:
        raise InvalidArgument(
            f"spec.catalog.tags is only for tag and untag, not {operation}", field="spec.catalog.tags"
        )
    if operation == "categorize":
        category = op.category.strip()
        if len(category) > 128 or any(ord(c) < 32 for c in category):
            raise InvalidArgument(
                "spec.catalog.category must be at most 128 characters without control characters",
                field="spec.catalog.category",
            )
    elif op.category:
        raise InvalidArgument(
            f"spec.catalog.category is only for categorize, not {operation}", field="spec.catalog.category"
        )
    return _Operation("catalog", operation, tags=tags, category=category)


def _selection_of(message: bpb.BatchSpec, kind: str) -> Selection:
    has_selection = message.HasField("selection")
    if kind == "import":
        if has_selection:
            raise InvalidArgument(
                "an import takes no selection: it selects the files of its directory", field="spec.selection"
            )
        return Selection()
    source = message.selection.WhichOneof("source") if has_selection else None
    if source is None:
        raise InvalidArgument("spec.selection is required: ids, paths or query", field="spec.selection")
    if source == "ids":
        return Selection("ids", tuple(message.selection.ids.ids))
    if source == "paths":
        return Selection("paths", tuple(message.selection.paths.paths))
    return Selection("query", filter=filter_of(message.selection.query, "spec.selection.query"))


def _item_deadline(message: bpb.BatchSpec, execution: Execution) -> float:
    deadline = message.item_deadline.ToNanoseconds() / 1e9 if message.HasField("item_deadline") else 0.0
    if deadline < 0:
        raise InvalidArgument("spec.item_deadline must not be negative", field="spec.item_deadline")
    if deadline > execution.max_item_deadline_seconds:
        raise LimitExceeded(
            "max_item_deadline_s", execution.max_item_deadline_seconds, deadline,
            env="BATCH_MAX_ITEM_DEADLINE", what="spec.item_deadline",
        )  # fmt: skip
    return deadline or execution.item_deadline_seconds


def _check_scheduling(message: bpb.BatchSpec, execution: Execution) -> None:
    if message.max_failures < -1:
        raise InvalidArgument(
            f"spec.max_failures must be -1 (unlimited) or more (got {message.max_failures})",
            field="spec.max_failures",
        )
    if message.concurrency < 0:
        raise InvalidArgument("spec.concurrency must not be negative", field="spec.concurrency")
    if message.concurrency > execution.max_concurrency:
        raise LimitExceeded(
            "max_concurrency", execution.max_concurrency, message.concurrency,
            env="BATCH_MAX_CONCURRENCY", what="spec.concurrency",
        )  # fmt: skip
    if message.priority not in bpb.Priority.values():
        raise InvalidArgument(f"spec.priority {message.priority} is not a priority", field="spec.priority")
    key = message.idempotency_key
    if len(key) > 128 or any(ord(c) < 33 for c in key):
        raise InvalidArgument(
            "spec.idempotency_key must be at most 128 characters without spaces or control characters",
            field="spec.idempotency_key",
        )
    if len(message.label) > 200:
        raise InvalidArgument("spec.label must be at most 200 characters", field="spec.label")


def spec_of(message: bpb.BatchSpec, execution: Execution) -> BatchSpec:
    """The domain spec of a BatchSpec, every field checked (the message is kept as ``raw``)."""
    which = message.WhichOneof("operation")
    if which is None:
        raise InvalidArgument(
            "spec names no operation: set import_directory, process or catalog", field="spec.operation"
        )
    if which == "import_directory":
        op = _import_of(message.import_directory)
    elif which == "process":
        op = _Operation("process", operation_name(message.process))
    else:
        op = _catalog_of(message.catalog)
    selection = _selection_of(message, op.kind)
    _check_scheduling(message, execution)
    return BatchSpec(
        kind=op.kind,
        operation=op.operation,
        atomic=message.atomic,
        max_failures=message.max_failures if message.max_failures != 0 or message.atomic else -1,
        concurrency=message.concurrency or execution.default_concurrency,
        priority=message.priority or bpb.PRIORITY_NORMAL,
        item_deadline_s=_item_deadline(message, execution),
        idempotency_key=message.idempotency_key,
        label=message.label,
        selection=selection,
        importing=op.importing,
        tags=op.tags,
        category=op.category,
        raw=message.SerializeToString(deterministic=True),
    )


# ---- batches and events ------------------------------------------------------------------------------


def batch_proto(record: BatchRecord) -> bpb.Batch:
    """A batch as a message."""
    batch = bpb.Batch(
        id=record.id,
        state=state_enum(record.state),  # type: ignore[arg-type]
        total=record.total,
        done=record.done,
        failed=record.failed,
        skipped=record.skipped,
        last_sequence=record.seq,
        reason=record.reason,
    )
    batch.spec.ParseFromString(record.spec)
    for name, ns in (
        ("created_at", record.created_ns),
        ("started_at", record.started_ns),
        ("finished_at", record.finished_ns),
    ):
        if ns:
            getattr(batch, name).CopyFrom(_ts(ns))
    return batch


def _snapshot_record(data: dict[str, Any], spec: bytes) -> BatchRecord:
    raw = {k.encode(): str(v).encode() for k, v in data.items() if k not in ("id",)}
    raw[b"spec"] = spec
    record = BatchRecord.from_fields(str(data["id"]), raw)
    record.seq = int(data["seq"])
    return record


def event_proto(batch_id: str, sequence: int, data: dict[str, Any], spec: bytes = b"") -> bpb.BatchEvent:
    """A journaled event as a message."""
    message = bpb.BatchEvent(batch_id=batch_id, sequence=sequence, time=_ts(int(data["t"])))
    kind = data["k"]
    if kind == "accepted":
        message.accepted.CopyFrom(bpb.BatchAccepted(total=int(data["total"]), atomic=bool(data["atomic"])))
    elif kind == "item_done":
        done = message.item_done
        done.item_id, done.path, done.attempts = data["item_id"], data["path"], int(data["attempts"])
        done.duration.CopyFrom(_duration(float(data["duration_s"])))
        for output in data["outputs"]:
            done.outputs.add(
                stored_path=output["stored_path"], content_key=output["content_key"],
                media_type=output["media_type"], size_bytes=output["size_bytes"],
                width=output["width"], height=output["height"],
            )  # fmt: skip
    elif kind == "item_skipped":
        message.item_skipped.CopyFrom(
            bpb.ItemSkipped(item_id=data["item_id"], path=data["path"], reason=data["reason"])
        )
    elif kind == "item_failed":
        message.item_failed.CopyFrom(
            bpb.ItemFailed(
                item_id=data["item_id"],
                path=data["path"],
                attempts=int(data["attempts"]),
                error=status_pb2.ItemStatus(
                    code=int(data["code"]),
                    code_name=data["code_name"],
                    message=data["message"],
                    field=data["field"],
                ),
            )
        )
    elif kind == "progress":
        progress = bpb.BatchProgress(
            done=int(data["done"]), failed=int(data["failed"]), skipped=int(data["skipped"]),
            total=int(data["total"]), items_per_second=float(data["rate"]),
        )  # fmt: skip
        if float(data["eta_s"]) >= 0:
            progress.eta.CopyFrom(_duration(float(data["eta_s"])))
        message.progress.CopyFrom(progress)
    elif kind == "phase":
        message.phase.CopyFrom(bpb.BatchPhase(state=state_enum(data["state"]), reason=data["reason"]))  # type: ignore[arg-type]
    elif kind == "finished":
        message.finished.batch.CopyFrom(batch_proto(_snapshot_record(data["batch"], spec)))
    return message

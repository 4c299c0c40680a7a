"""``mediactl import``, ``mediactl batch ...`` and ``mediactl catalog ...``: bulk operations with live
progress bars driven by the batch's event stream, or NDJSON events for scripts (``--json``)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
import grpc
from google.protobuf import duration_pb2, json_format
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from mediasuite.processing.v1 import processing_service_pb2 as pb
from services.cli.help import Choice, SuiteGroup

__all__ = ["batch", "catalog", "import_directory"]

T = TypeVar("T")
console = Console(stderr=True, highlight=False)
_SCOPES = "mediasuite-scope"
_PROCESS = ("thumbnail", "convert", "optimize", "analyze-quality", "enhance", "watermark", "probe")
_ACTIONS = {
    "tag": bpb.CATALOG_ACTION_TAG,
    "untag": bpb.CATALOG_ACTION_UNTAG,
    "categorize": bpb.CATALOG_ACTION_CATEGORIZE,
    "approve": bpb.CATALOG_ACTION_APPROVE,
    "reject": bpb.CATALOG_ACTION_REJECT,
    "trash": bpb.CATALOG_ACTION_TRASH,
    "restore": bpb.CATALOG_ACTION_RESTORE,
    "purge": bpb.CATALOG_ACTION_PURGE,
}
_STATUSES = {n.removeprefix("REVIEW_STATUS_").lower(): v for n, v in cpb.ReviewStatus.items() if v}
_STATES = {n.removeprefix("BATCH_STATE_").lower(): v for n, v in bpb.BatchState.items() if v}
_FORMATS = {n.removeprefix("IMAGE_FORMAT_").lower(): v for n, v in pb.ImageFormat.items() if v}
_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is the batch service running at {addr}? (`make run`, or --batch-addr)",
    grpc.StatusCode.PERMISSION_DENIED: "paths are relative to the media root; purge needs --admin",
    grpc.StatusCode.NOT_FOUND: "`mediactl batch list` shows the batches that are kept",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "the limit and its variable are named above",
}


def _run(ctx: click.Context, work: Callable[[grpc.aio.Channel], Coroutine[Any, Any, T]]) -> T:
    address = ctx.obj.addresses["batch"]

    async def go() -> T:
        async with ctx.obj.aio_channel(address) as channel:
            return await work(channel)

    try:
        return asyncio.run(go())
    except grpc.aio.AioRpcError as error:
        hint = _HINTS.get(error.code(), "").format(addr=address)
        raise click.ClickException(
            f"{error.code().name}: {error.details()}" + (f"\n  hint: {hint}" if hint else "")
        ) from None


def _state(value: int) -> str:
    return bpb.BatchState.Name(value).removeprefix("BATCH_STATE_").lower()  # type: ignore[arg-type]


def _metadata(admin: bool) -> tuple[tuple[str, str], ...]:
    return ((_SCOPES, "admin"),) if admin else ()


def _filter(where: tuple[str, ...]) -> cpb.CatalogFilter:
    """``status=pending``, ``tag=beach``, ``category=travel``, ``format=JPEG``, ``kind=video``,
    ``path=2024``, ``min-size=1000``, ``max-size=5000000`` (repeat a key for "any of")."""
    flt = cpb.CatalogFilter()
    for clause in where:
        key, sep, value = clause.partition("=")
        key = key.strip().lower()
        if not sep or not value:
            raise click.BadParameter(f"{clause!r}: use KEY=VALUE", param_hint="--where")
        if key == "status":
            if value.lower() not in _STATUSES:
                raise click.BadParameter(
                    f"status {value!r}: one of {', '.join(_STATUSES)}", param_hint="--where"
                )
            flt.statuses.append(_STATUSES[value.lower()])
        elif key in ("tag", "category", "format"):
            getattr(flt, {"tag": "tags", "category": "categories", "format": "formats"}[key]).append(value)
        elif key == "kind":
            kinds = {"image": cpb.MEDIA_KIND_IMAGE, "video": cpb.MEDIA_KIND_VIDEO}
            if value.lower() not in kinds:
                raise click.BadParameter("kind is image or video", param_hint="--where")
            flt.kind = kinds[value.lower()]
        elif key == "path":
            flt.path_contains = value
        elif key in ("min-size", "max-size"):
            if not value.isdigit():
                raise click.BadParameter(f"{key} is a number of bytes", param_hint="--where")
            setattr(flt, key.replace("-", "_") + "_bytes", int(value))
        else:
            raise click.BadParameter(
                f"unknown key {key!r}: status, tag, category, format, kind, path, min-size, max-size",
                param_hint="--where",
            )
    return flt


def _selection(select: tuple[str, ...]) -> bpb.Selection:
    ids = [s.removeprefix("id:") for s in select if s.startswith("id:")]
    paths = [s.removeprefix("path:") for s in select if s.startswith("path:")]
    filters = tuple(s for s in select if not s.startswith(("id:", "path:")))
    if sum(bool(x) for x in (ids, paths, filters)) > 1:
        raise click.BadParameter("select ids, paths or a filter, not a mix", param_hint="--select")
    if ids:
        return bpb.Selection(ids=bpb.ItemIds(ids=ids))
    if paths:
        return bpb.Selection(paths=bpb.MediaPaths(paths=paths))
    return bpb.Selection(query=_filter(filters))


def _encode(fmt: str | None, quality: int) -> pb.EncodeOptions:
    return pb.EncodeOptions(format=_FORMATS[fmt] if fmt else pb.IMAGE_FORMAT_UNSPECIFIED, quality=quality)


def _event_json(event: bpb.BatchEvent) -> str:
    return json.dumps(
        json_format.MessageToDict(event, preserving_proto_field_name=True), separators=(",", ":")
    )


async def _follow(events: Any, as_json: bool, label: str) -> bpb.Batch:
    """Print the events (NDJSON) or drive a progress bar; the final batch."""
    final = bpb.Batch()
    if as_json:
        async for reply in events:
            click.echo(_event_json(reply.event))
            if reply.event.WhichOneof("event") == "finished":
                final = reply.event.finished.batch
        return final
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} items/s"),
        TextColumn("failed {task.fields[failed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=None, rate=0.0, failed=0)
        async for reply in events:
            event = reply.event
            which = event.WhichOneof("event")
            if which == "accepted":
                progress.update(
                    task,
                    description=f"{label} {event.batch_id}",
                    total=event.accepted.total if event.accepted.total >= 0 else None,
                )
            elif which == "progress":
                p = event.progress
                progress.update(
                    task, completed=p.done + p.failed + p.skipped, total=p.total if p.total >= 0 else None,
                    rate=p.items_per_second, failed=p.failed,
                )  # fmt: skip
            elif which in ("item_done", "item_skipped", "item_failed"):
                progress.advance(task)
                if which == "item_failed":
                    f = event.item_failed
                    progress.console.print(f"[red]failed[/] {f.path}: {f.error.code_name}: {f.error.message}")
            elif which == "phase":
                state = bpb.BatchState.Name(event.phase.state).removeprefix("BATCH_STATE_").lower()
                progress.console.print(f"[dim]{state}[/]: {event.phase.reason}")
            elif which == "finished":
                final = event.finished.batch
    return final


def _finish(final: bpb.Batch) -> None:
    state = bpb.BatchState.Name(final.state).removeprefix("BATCH_STATE_").lower()
    console.print(
        f"batch {final.id} {state}: {final.done} done, {final.skipped} skipped, {final.failed} failed"
        + (f" ({final.reason})" if final.reason else "")
    )
    if final.state != bpb.BATCH_STATE_SUCCEEDED:
        sys.exit(1)


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(
        [
            click.option(
                "--atomic", is_flag=True, help="All or nothing: outputs and changes published together."
            ),
            click.option(
                "--max-failures",
                type=int,
                default=0,
                help="Failures tolerated (-1: any; default 0 atomic, any otherwise).",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(min=0),
                default=0,
                help="Work in flight (0: the service's default).",
            ),
            click.option(
                "--priority",
                type=Choice(["low", "normal", "high"]),
                default="normal",
                show_default=True,
            ),
            click.option(
                "--item-deadline",
                type=click.FloatRange(min=0),
                default=0.0,
                help="Seconds per item attempt (0: default).",
            ),
            click.option(
                "--idempotency-key", default="", help="Reuse returns the first batch with this key."
            ),
            click.option("--label", default="", help="Free text shown in listings."),
            click.option(
                "--detach", is_flag=True, help="Start it and print its id; follow with `batch watch`."
            ),
            click.option("--json", "as_json", is_flag=True, help="NDJSON events on stdout (for scripts)."),
        ]
    ):
        func = decorator(func)
    return func


def _spec(spec: bpb.BatchSpec, options: dict[str, Any]) -> bpb.BatchSpec:
    spec.atomic = options["atomic"]
    spec.max_failures = options["max_failures"]
    spec.concurrency = options["concurrency"]
    spec.priority = {"low": bpb.PRIORITY_LOW, "normal": bpb.PRIORITY_NORMAL, "high": bpb.PRIORITY_HIGH}[
        options["priority"]
    ]
    if options["item_deadline"]:
        spec.item_deadline.CopyFrom(
            duration_pb2.Duration(
                seconds=int(options["item_deadline"]), nanos=int(options["item_deadline"] % 1 * 1e9)
            )
        )
    spec.idempotency_key = options["idempotency_key"]
    spec.label = options["label"]
    return spec


def _submit(
    ctx: click.Context, spec: bpb.BatchSpec, options: dict[str, Any], admin: bool, label: str
) -> None:
    async def work(channel: grpc.aio.Channel) -> bpb.Batch | None:
        stub = batch_service_pb2_grpc.BatchServiceStub(channel)
        if options["detach"]:
            started = await stub.StartBatch(
                bpb.StartBatchRequest(spec=spec), metadata=_metadata(admin), timeout=ctx.obj.timeout * 12
            )
            click.echo(started.batch.id)
            return None
        call = stub.SubmitBatch(bpb.SubmitBatchRequest(spec=spec), metadata=_metadata(admin))
        return await _follow(call, options["as_json"], label)

    final = _run(ctx, work)
    if final is not None:
        _finish(final)


@click.command("import")
@click.argument("directory")
@click.option(
    "--recursive/--no-recursive", default=True, show_default=True, help="Descend into subdirectories."
)
@click.option("--include", multiple=True, help='Only paths matching this glob ("**/*.jpg"); repeatable.')
@click.option("--exclude", multiple=True, help="Skip paths matching this glob; repeatable.")
@click.option("--force", is_flag=True, help="Probe every file again, even unchanged ones.")
@_options
@click.pass_context
def import_directory(
    ctx: click.Context,
    /,
    *,
    directory: str,
    recursive: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    force: bool,
    **options: Any,
) -> None:
    """Import DIRECTORY (relative to the service's media root, "." for all of it) into the catalog.

    Example: mediactl import 2024/holiday --include '**/*.jpg'
    """
    directory = "" if directory in (".", "/") else directory.strip("/")
    operation = bpb.ImportOperation(
        directory=directory, recursive=recursive, include=include, exclude=exclude, force=force
    )
    _submit(ctx, _spec(bpb.BatchSpec(import_directory=operation), options), options, False, "import")


@click.group(cls=SuiteGroup)
def batch() -> None:
    """Bulk operations over the catalog: run, watch, list, cancel.

    Example: mediactl batch run thumbnail --select status=approved --preset small --preset gallery
    """


@batch.command("run")
@click.argument("operation", type=Choice([*_PROCESS, *_ACTIONS]))
@click.option(
    "--select",
    "select",
    multiple=True,
    help="id:ID, path:PATH, or a filter KEY=VALUE (status, tag, category, format, kind, path, "
    "min-size, max-size); repeatable. None: every item not trashed.",
)
@click.option("--preset", multiple=True, help="Thumbnail preset (repeatable).")
@click.option("--format", "fmt", type=Choice(sorted(_FORMATS)), help="Output format.")
@click.option(
    "--quality", type=click.IntRange(0, 100), default=0, help="Output quality (0: the format's default)."
)
@click.option(
    "--min-ssim", type=click.FloatRange(0, 1), default=0.0, help="optimize: smallest similarity kept."
)
@click.option("--text", default="", help="watermark: the text.")
@click.option("--tag", "tags", multiple=True, help="tag/untag: a tag (repeatable).")
@click.option("--category", default="", help="categorize: the category ('' clears it).")
@click.option("--admin", is_flag=True, help="Send the admin scope (purge needs it).")
@_options
@click.pass_context
def run(
    ctx: click.Context,
    /,
    *,
    operation: str,
    select: tuple[str, ...],
    preset: tuple[str, ...],
    fmt: str | None,
    quality: int,
    min_ssim: float,
    text: str,
    tags: tuple[str, ...],
    category: str,
    admin: bool,
    **options: Any,
) -> None:
    """Run OPERATION over a selection, with a live progress bar (or --json events).

    \b
    Examples:
      mediactl batch run thumbnail --select status=approved --preset small --format webp
      mediactl batch run tag --select path:2024/a.jpg --select path:2024/b.jpg --tag beach
      mediactl batch run purge --select status=trashed --admin --atomic
    """
    spec = bpb.BatchSpec(selection=_selection(select))
    encode = _encode(fmt, quality)
    if operation in _ACTIONS:
        spec.catalog.CopyFrom(bpb.CatalogOperation(action=_ACTIONS[operation], tags=tags, category=category))
    elif operation == "thumbnail":
        spec.process.thumbnail.CopyFrom(bpb.ThumbnailOperation(presets=preset or ["medium"], encode=encode))
    elif operation == "convert":
        spec.process.convert.CopyFrom(bpb.ConvertOperation(encode=encode))
    elif operation == "optimize":
        spec.process.optimize.CopyFrom(bpb.OptimizeOperation(encode=encode, min_ssim=min_ssim))
    elif operation == "analyze-quality":
        spec.process.analyze_quality.SetInParent()
    elif operation == "enhance":
        spec.process.enhance.CopyFrom(bpb.EnhanceOperation(encode=encode))
    elif operation == "watermark":
        spec.process.watermark.CopyFrom(bpb.WatermarkOperation(text=pb.TextMark(text=text), encode=encode))
    else:
        spec.process.probe.SetInParent()
    _submit(ctx, _spec(spec, options), options, admin, operation)


@batch.command()
@click.argument("batch_id")
@click.option(
    "--after", type=click.IntRange(min=0), default=0, help="Replay events after this sequence number."
)
@click.option("--json", "as_json", is_flag=True, help="NDJSON events on stdout.")
@click.pass_context
def watch(ctx: click.Context, batch_id: str, after: int, as_json: bool) -> None:
    """Follow a batch (replaying what happened since --after) until it finishes.

    Example: mediactl batch watch 3f2a9c0d11e4b7a2 --json
    """

    async def work(channel: grpc.aio.Channel) -> bpb.Batch:
        stub = batch_service_pb2_grpc.BatchServiceStub(channel)
        return await _follow(
            stub.WatchBatch(bpb.WatchBatchRequest(batch_id=batch_id, after_sequence=after)), as_json, "batch"
        )

    _finish(_run(ctx, work))


@batch.command("list")
@click.option("--state", "states", multiple=True, type=Choice(sorted(_STATES)), help="Only these states.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per batch.")
@click.pass_context
def list_batches(ctx: click.Context, states: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List batches, newest first.

    Example: mediactl batch list --state running --state queued
    """

    async def work(channel: grpc.aio.Channel) -> bpb.ListBatchesResponse:
        stub = batch_service_pb2_grpc.BatchServiceStub(channel)
        request = bpb.ListBatchesRequest(states=[_STATES[s] for s in states], page_size=limit)
        return await stub.ListBatches(request, timeout=ctx.obj.timeout)

    reply = _run(ctx, work)
    if as_json:
        for b in reply.batches:
            click.echo(
                json.dumps(
                    json_format.MessageToDict(b, preserving_proto_field_name=True), separators=(",", ":")
                )
            )
        return
    table = Table()
    for column in ("id", "state", "operation", "total", "done", "failed", "skipped", "label"):
        table.add_column(column)
    for b in reply.batches:
        which = b.spec.WhichOneof("operation") or ""
        operation = {
            "import_directory": "import",
            "process": b.spec.process.WhichOneof("operation") or "process",
        }.get(which, "")
        if which == "catalog":
            operation = bpb.CatalogAction.Name(b.spec.catalog.action).removeprefix("CATALOG_ACTION_").lower()
        state = bpb.BatchState.Name(b.state).removeprefix("BATCH_STATE_").lower()
        table.add_row(
            b.id,
            state,
            operation + (" (atomic)" if b.spec.atomic else ""),
            str(b.total),
            str(b.done),
            str(b.failed),
            str(b.skipped),
            b.spec.label,
        )
    Console(highlight=False).print(table)


@batch.command()
@click.argument("batch_id")
@click.option("--reason", default="", help="Recorded in the batch's events.")
@click.pass_context
def cancel(ctx: click.Context, batch_id: str, reason: str) -> None:
    """Cancel a batch: an atomic one rolls back, another keeps what it has done.

    Example: mediactl batch cancel 3f2a9c0d11e4b7a2 --reason "wrong preset"
    """

    async def work(channel: grpc.aio.Channel) -> bpb.CancelBatchResponse:
        stub = batch_service_pb2_grpc.BatchServiceStub(channel)
        return await stub.CancelBatch(
            bpb.CancelBatchRequest(batch_id=batch_id, reason=reason), timeout=ctx.obj.timeout
        )

    reply = _run(ctx, work)
    click.echo(f"batch {reply.batch.id}: cancel recorded ({_state(reply.batch.state)})")


@click.group(cls=SuiteGroup)
def catalog() -> None:
    """Read the library catalog: query items, the collection summary.

    Example: mediactl catalog query --where status=pending --order-by "size desc"
    """


@catalog.command()
@click.option(
    "--where",
    multiple=True,
    help="KEY=VALUE filter: status, tag, category, format, kind, path, min-size, max-size.",
)
@click.option(
    "--order-by",
    default="path",
    show_default=True,
    help='path, size, modified, taken or quality, optionally " desc".',
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most items shown.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per item.")
@click.pass_context
def query(ctx: click.Context, where: tuple[str, ...], order_by: str, limit: int, as_json: bool) -> None:
    """Items matching filters, ordered.

    Example: mediactl catalog query --where tag=beach --where format=JPEG --order-by "taken desc"
    """
    flt = _filter(where)

    async def work(channel: grpc.aio.Channel) -> list[cpb.CatalogItem]:
        stub = catalog_service_pb2_grpc.CatalogServiceStub(channel)
        items: list[cpb.CatalogItem] = []
        token = ""
        while len(items) < limit:
            request = cpb.QueryItemsRequest(
                filter=flt, order_by=order_by, page_size=min(1000, limit - len(items)), page_token=token
            )
            reply = await stub.QueryItems(request, timeout=ctx.obj.timeout * 6)
            items.extend(reply.items)
            token = reply.page.next_page_token
            if not token:
                break
        return items

    items = _run(ctx, work)
    if as_json:
        for item in items:
            click.echo(
                json.dumps(
                    json_format.MessageToDict(item, preserving_proto_field_name=True), separators=(",", ":")
                )
            )
        return
    table = Table()
    # The path first and whole (it is what the other commands take); category and tags only when
    # an item has one; the id last, shortened first when the terminal is narrow.
    longest = max((len(item.path) for item in items), default=4)
    table.add_column("path", no_wrap=True, min_width=min(longest, 60))
    for column in ("format", "size", "quality", "status"):
        table.add_column(column, justify="right" if column in ("size", "quality") else "left", no_wrap=True)
    extra = [name for name in ("category", "tags") if any(getattr(item, name) for item in items)]
    for column in extra:
        table.add_column(column)
    table.add_column("id", overflow="ellipsis", no_wrap=True)
    for item in items:
        status = cpb.ReviewStatus.Name(item.status).removeprefix("REVIEW_STATUS_").lower()
        cells = {"category": item.category, "tags": ",".join(item.tags)}
        table.add_row(
            item.path,
            item.format,
            f"{item.size_bytes:,}",
            f"{item.quality_score:.0f}" if item.quality_score else "-",  # 0: not analysed
            status,
            *(cells[name] for name in extra),
            item.id,
        )
    Console(highlight=False).print(table)


@catalog.command()
@click.option("--json", "as_json", is_flag=True, help="The summary as one JSON object.")
@click.pass_context
def summary(ctx: click.Context, as_json: bool) -> None:
    """Counts and bytes by format, status and category.

    Example: mediactl catalog summary --json
    """

    async def work(channel: grpc.aio.Channel) -> cpb.GetSummaryResponse:
        return await catalog_service_pb2_grpc.CatalogServiceStub(channel).GetSummary(
            cpb.GetSummaryRequest(), timeout=ctx.obj.timeout * 6
        )

    reply = _run(ctx, work)
    if as_json:
        click.echo(
            json.dumps(
                json_format.MessageToDict(reply, preserving_proto_field_name=True), separators=(",", ":")
            )
        )
        return
    out = Console(highlight=False)
    out.print(
        f"{reply.total.count:,} items, {reply.total.bytes:,} bytes (trash excluded)"
        + (" [dim](cached)[/]" if reply.cached else "")
    )
    for title, buckets in (
        ("format", reply.by_format),
        ("status", reply.by_status),
        ("category", reply.by_category),
    ):
        table = Table(title=f"by {title}", title_justify="left")
        for column in (title, "items", "bytes"):
            table.add_column(column)
        for key in sorted(buckets):
            table.add_row(key or "(none)", f"{buckets[key].count:,}", f"{buckets[key].bytes:,}")
        out.print(table)

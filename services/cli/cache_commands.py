"""``mediactl cache``: statistics, get/set/delete, invalidation and namespaces of the cache service."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc
from google.protobuf import duration_pb2
from rich import box
from rich.console import Console
from rich.table import Table

from mediasuite.cache.v1 import cache_service_pb2 as pb
from mediasuite.cache.v1 import cache_service_pb2_grpc
from services.cli.help import SuiteGroup
from services.runtime.clients import open_channel
from services.runtime.config import parse_duration

__all__ = ["cache"]

console = Console(highlight=False, width=None if sys.stdout.isatty() else 130)
T = TypeVar("T")

_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is the cache running there? Start it with `make run`, or pass --cache-addr",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the cache did not answer in time; raise --timeout or check its log",
    grpc.StatusCode.NOT_FOUND: "`mediactl cache namespaces` lists the namespaces",
}


def _call(
    ctx: click.Context, call: Callable[[cache_service_pb2_grpc.CacheServiceAsyncStub], Awaitable[T]]
) -> T:
    """Run one call against the cache at --cache-addr; gRPC errors become messages saying what to do."""
    address: str = ctx.obj.addresses["cache"]
    timeout: float = ctx.obj.timeout

    async def run() -> T:
        channel = open_channel(address, deadline_seconds=timeout, tls=ctx.obj.tls)
        try:
            return await call(cache_service_pb2_grpc.CacheServiceStub(channel))
        finally:
            await channel.close(None)

    try:
        return asyncio.run(run())
    except grpc.aio.AioRpcError as error:
        hint = _HINTS.get(error.code())
        message = f"cache at {address}: {error.code().name}: {error.details()}"
        raise click.ClickException(f"{message}\n  {hint}" if hint else message) from None


def _duration(text: str | None) -> duration_pb2.Duration | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a duration such as 30s, 10m or 1h", param_hint="--ttl"
        ) from None
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


def _size(value: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= factor:
            return f"{value / factor:.1f} {unit}"
    return f"{value} B"


@click.group(cls=SuiteGroup)
def cache() -> None:
    """The cache service: statistics, entries, invalidation.

    \b
    Examples:
      mediactl cache stats
      mediactl cache set thumbnail photo:1 --file thumb.webp --ttl 1h
      mediactl cache get thumbnail photo:1 -o thumb.webp
      mediactl cache invalidate thumbnail --prefix photo:
    """


@cache.command()
@click.option("--namespace", "-n", default="", help="Only this namespace.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as one JSON object.")
@click.pass_context
def stats(ctx: click.Context, namespace: str, as_json: bool) -> None:
    """Hits, misses, sizes and latency per namespace, and the backend's state.

    Example: mediactl cache stats --namespace thumbnail
    """
    reply = _call(ctx, lambda stub: stub.GetStats(pb.GetStatsRequest(namespace=namespace)))
    backend = reply.backend
    if as_json:
        from google.protobuf.json_format import MessageToDict

        click.echo(json.dumps(MessageToDict(reply, always_print_fields_with_no_presence=True)))
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("namespace", "hits", "misses (stale)", "hit%", "sets", "deletes", "evicted", "entries"):
        table.add_column(column, justify="left" if column == "namespace" else "right", no_wrap=True)
    table.add_column("bytes raw > stored", justify="right", no_wrap=True)
    table.add_column("p50/p99 us", justify="right", no_wrap=True)
    for row in [*reply.namespaces, reply.total]:
        table.add_row(
            row.namespace or "total",
            f"{row.hits:,}",
            f"{row.misses:,} ({row.stale_misses:,})",
            f"{row.hit_ratio:.0%}",
            f"{row.sets:,}",
            f"{row.deletes:,}",
            f"{row.evictions:,}",
            f"{row.entries:,}",
            f"{_size(row.raw_bytes)} > {_size(row.stored_bytes)}",
            f"{row.latency_p50_us:.0f}/{row.latency_p99_us:.0f}",
        )
    console.print(table)
    active = pb.BackendKind.Name(backend.active).removeprefix("BACKEND_KIND_").lower()
    state = f"[red]DEGRADED[/] ({backend.reason})" if backend.degraded else "[green]ok[/]"
    console.print(f"backend: {active}, {state}, failovers since start: {backend.failovers}")


@cache.command()
@click.argument("namespace")
@click.argument("key")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the value here.")
@click.option("--verify-source", is_flag=True, help="Have the cache check the entry's source file first.")
@click.option("--info", "show_info", is_flag=True, help="Print the entry's metadata to stderr.")
@click.pass_context
def get(
    ctx: click.Context, *, namespace: str, key: str, output: Path | None, verify_source: bool, show_info: bool
) -> None:
    """Print the value under KEY (exit 1 when there is none).

    Example: mediactl cache get media_metadata albums/a.jpg --info
    """
    request = pb.GetRequest(namespace=namespace, key=key, verify_source=verify_source)
    reply = _call(ctx, lambda stub: stub.Get(request))
    if not reply.found:
        reason = pb.MissReason.Name(reply.miss_reason).removeprefix("MISS_REASON_").lower()
        raise click.ClickException(f"{namespace}/{key}: not found ({reason})")
    if show_info:
        info = reply.info
        codec = pb.Codec.Name(info.codec).removeprefix("CODEC_").lower()
        click.echo(
            f"{_size(info.raw_bytes)} as {_size(info.stored_bytes)} ({codec}), "
            f"expires {info.expires_at.ToJsonString()}"
            + (f", {info.content_type}" if info.content_type else "")
            + (f", source {info.fingerprint.path}" if info.HasField("fingerprint") else ""),
            err=True,
        )
    if output is not None:
        output.write_bytes(reply.value)
    else:
        sys.stdout.buffer.write(reply.value)
        sys.stdout.buffer.flush()


@cache.command(name="set")
@click.argument("namespace")
@click.argument("key")
@click.argument("value", required=False)
@click.option(
    "--file", "-f", "file", type=click.File("rb"), help="Read the value from a file ('-' for stdin)."
)
@click.option("--ttl", help="Time to live (30s, 10m, 1h); at most the namespace's maximum.")
@click.option("--content-type", default="", help="Media type stored with the value.")
@click.pass_context
def set_(
    ctx: click.Context,
    *,
    namespace: str,
    key: str,
    value: str | None,
    file: Any,
    ttl: str | None,
    content_type: str,
) -> None:
    """Store VALUE (or a file's bytes) under KEY.

    Example: mediactl cache set collection_summary 2024 '{"items": 120}' --ttl 10m
    """
    if (value is None) == (file is None):
        raise click.UsageError("give the value either as an argument or with --file")
    data = value.encode() if value is not None else file.read()
    request = pb.SetRequest(namespace=namespace, key=key, value=data, content_type=content_type)
    duration = _duration(ttl)
    if duration is not None:
        request.ttl.CopyFrom(duration)
    info = _call(ctx, lambda stub: stub.Set(request)).info
    codec = pb.Codec.Name(info.codec).removeprefix("CODEC_").lower()
    click.echo(
        f"stored {namespace}/{key}: {_size(info.raw_bytes)} as {_size(info.stored_bytes)} ({codec}), "
        f"expires {info.expires_at.ToJsonString()}"
    )


@cache.command()
@click.argument("namespace")
@click.argument("keys", nargs=-1, required=True)
@click.pass_context
def delete(ctx: click.Context, namespace: str, keys: tuple[str, ...]) -> None:
    """Delete one or more KEYS.

    Example: mediactl cache delete thumbnail photo:1 photo:2
    """
    reply = _call(ctx, lambda stub: stub.DeleteMany(pb.DeleteManyRequest(namespace=namespace, keys=keys)))
    click.echo(f"deleted {reply.deleted_count} of {len(keys)}")


@cache.command()
@click.argument("namespace")
@click.option("--prefix", help="Keys starting with this ('' for the whole namespace).")
@click.option("--pattern", help="Keys matching this glob (* ? [abc], as in Redis).")
@click.option("--source", "source", help="Entries made from this file (path under the media root).")
@click.pass_context
def invalidate(
    ctx: click.Context, namespace: str, prefix: str | None, pattern: str | None, source: str | None
) -> None:
    """Delete every entry of NAMESPACE ('*' for all) matching a prefix, a pattern or a source.

    Example: mediactl cache invalidate '*' --source albums/2024/a.jpg
    """
    if sum(x is not None for x in (prefix, pattern, source)) != 1:
        raise click.UsageError("give exactly one of --prefix, --pattern or --source")
    if prefix is not None:
        request = pb.InvalidateRequest(namespace=namespace, prefix=prefix)
    elif pattern is not None:
        request = pb.InvalidateRequest(namespace=namespace, pattern=pattern)
    else:
        request = pb.InvalidateRequest(namespace=namespace, source_path=source or "")
    reply = _call(ctx, lambda stub: stub.Invalidate(request))
    click.echo(f"deleted {reply.deleted_count} entries")


@cache.command()
@click.pass_context
def namespaces(ctx: click.Context) -> None:
    """The namespaces and their TTL policies.

    Example: mediactl cache namespaces
    """
    reply = _call(ctx, lambda stub: stub.ListNamespaces(pb.ListNamespacesRequest()))
    table = Table()
    for column in ("namespace", "default TTL", "max TTL", "freshness checked"):
        table.add_column(column)
    for policy in reply.namespaces:
        table.add_row(
            policy.name,
            f"{policy.default_ttl.ToTimedelta()}",
            f"{policy.max_ttl.ToTimedelta()}",
            "yes" if policy.freshness_checked else "no",
        )
    console.print(table)

"""Helpers for batch tests: a media tree of real images and videos, the environment that wires a
processing and a batch process over it, running batches to the end (or killing the service mid-way),
reading the catalog's Redis keys byte for byte."""

from __future__ import annotations

import io
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from PIL import Image

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import batch_service_pb2_grpc
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from tests.support.media import exif_bytes, h264_video
from tests.support.processes import Running

__all__ = [
    "IMPORT_LIBRARY",
    "batch_env",
    "catalog_dump",
    "jpeg",
    "make_tree",
    "processing_env",
    "run_batch",
    "small_png",
    "submit_until_killed",
    "watch_batch",
]

# Import everything make_tree wrote (its default directory), metadata and all.
IMPORT_LIBRARY = bpb.BatchSpec(import_directory=bpb.ImportOperation(directory="library", recursive=True))


def jpeg(seed: int, width: int = 96, height: int = 64, *, exif: bool = False) -> bytes:
    """A small JPEG whose pixels (and so hash) depend on ``seed``, with camera EXIF when asked."""
    image = Image.new("RGB", (width, height), ((seed * 37) % 256, (seed * 11) % 256, (seed * 73) % 256))
    image.putpixel((seed % width, (seed // width) % height), (255, 255, 255))
    buffer = io.BytesIO()
    extra: dict[str, Any] = {}
    if exif:
        extra["exif"] = exif_bytes()
    image.save(buffer, format="JPEG", quality=85, **extra)
    return buffer.getvalue()


def small_png(seed: int, side: int = 40) -> bytes:
    """A small PNG depending on ``seed``."""
    image = Image.new("RGB", (side, side), ((seed * 19) % 256, 90, (seed * 7) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_tree(root: Path, images: int, videos: int = 0, *, directory: str = "library") -> list[str]:
    """``images`` images (JPEG and PNG, in nested folders) and ``videos`` MP4s under ``root/directory``;
    their relative paths, sorted."""
    made = []
    for index in range(images):
        folder = f"{directory}/{2020 + index % 3}/{index % 7:02d}"
        name = f"{folder}/img{index:04d}." + ("png" if index % 5 == 0 else "jpg")
        data = small_png(index) if index % 5 == 0 else jpeg(index, exif=index % 2 == 1)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made.append(name)
    for index in range(videos):
        name = f"{directory}/clips/clip{index}.mp4"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(h264_video(frames=12 + index, size=(160, 120), black_frames=0))
        made.append(name)
    (root / directory / "notes.txt").write_text("not media")
    return sorted(made)


def processing_env(
    media: Path, derived: Path, *, workers: int = 1, cache: str | None = None
) -> dict[str, str]:
    """The environment of a ``mediasuite-processing`` over ``media`` writing to ``derived``, with
    ``workers`` workers; ``cache`` is the cache service's address (none: processing runs without one)."""
    env = {
        "PROCESSING_MEDIA_ROOT": str(media),
        "PROCESSING_DERIVED_ROOT": str(derived),
        "PROCESSING_WORKERS": str(workers),
    }
    env.update({"CACHE_ADDR": cache} if cache else {"PROCESSING_CACHE": "false"})
    return env


def batch_env(
    media: Path, derived: Path, *, redis_url: str, prefix: str, processing: str, cache: str | None = None
) -> dict[str, str]:
    """The environment of a ``mediasuite-batch`` over the same roots, its keys under ``prefix`` in
    ``redis_url``, calling processing at ``processing`` (and the cache at ``cache``, when given)."""
    env = {
        "REDIS_URL": redis_url,
        "BATCH_KEY_PREFIX": prefix,
        "BATCH_MEDIA_ROOT": str(media),
        "BATCH_DERIVED_ROOT": str(derived),
        "PROCESSING_ADDR": processing,
    }
    if cache:
        env["CACHE_ADDR"] = cache
    return env


async def run_batch(
    stub: batch_service_pb2_grpc.BatchServiceAsyncStub,
    spec: bpb.BatchSpec,
    metadata: Iterable[tuple[str, str]] = (),
    deadline: float = 120,
) -> list[bpb.BatchEvent]:
    """Submit a batch and collect its events until it finishes (within ``deadline`` seconds)."""
    events = []
    call = stub.SubmitBatch(bpb.SubmitBatchRequest(spec=spec), metadata=tuple(metadata), timeout=deadline)
    async for reply in call:
        events.append(reply.event)
    return events


async def watch_batch(
    stub: batch_service_pb2_grpc.BatchServiceAsyncStub, batch_id: str
) -> list[bpb.BatchEvent]:
    """Every event of a batch, from its first, until it finishes (WatchBatch)."""
    call = stub.WatchBatch(bpb.WatchBatchRequest(batch_id=batch_id), timeout=120)
    return [reply.event async for reply in call]


async def submit_until_killed(
    stub: batch_service_pb2_grpc.BatchServiceAsyncStub,
    spec: bpb.BatchSpec,
    service: Running,
    kill_when: Callable[[list[bpb.BatchEvent]], bool],
) -> list[bpb.BatchEvent]:
    """Submit a batch to ``service`` and SIGKILL it as soon as ``kill_when(events so far)``; the
    events it sent before it died (the stream must end in an error)."""
    seen: list[bpb.BatchEvent] = []

    async def follow_and_kill() -> None:
        async for reply in stub.SubmitBatch(bpb.SubmitBatchRequest(spec=spec), timeout=120):
            seen.append(reply.event)
            if kill_when(seen):
                service.popen.send_signal(signal.SIGKILL)

    with pytest.raises(grpc.aio.AioRpcError):
        await follow_and_kill()
    return seen


def kinds(events: Iterable[bpb.BatchEvent]) -> list[str]:
    """The kind of each event."""
    return [str(e.WhichOneof("event")) for e in events]


def finished(events: list[bpb.BatchEvent]) -> bpb.Batch:
    """The final batch of a finished stream."""
    assert events[-1].WhichOneof("event") == "finished", [e.WhichOneof("event") for e in events[-3:]]
    return events[-1].finished.batch


def catalog_dump(url: str, prefix: str) -> dict[bytes, Any]:
    """Every catalog key under ``prefix`` and its exact content (hash fields, sorted-set members,
    strings), so two dumps compare byte for byte."""
    client = redis.Redis.from_url(url)
    try:
        dump: dict[bytes, Any] = {}
        for key in client.scan_iter(match=f"{prefix}c:*", count=1000):
            kind = client.type(key)
            if kind == b"hash":
                dump[key] = client.hgetall(key)
            elif kind == b"zset":
                dump[key] = client.zrange(key, 0, -1, withscores=True)
            elif kind == b"string":
                dump[key] = client.get(key)
            else:
                dump[key] = (kind, client.dump(key))
        return dump
    finally:
        client.close()


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> None:
    """Poll until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def status_of(error: grpc.aio.AioRpcError) -> str:
    """The status code name of a failed call."""
    return str(error.code().name)


def query_all(items: Iterable[cpb.CatalogItem]) -> dict[str, cpb.CatalogItem]:
    """Items by path."""
    return {i.path: i for i in items}

"""Batch benchmark (``make bench BENCH=batch``).

- Import with metadata enrichment (probe + sha256 of every file, catalog written, every event
  journaled and streamed) of 10,000 generated small JPEGs through the whole suite (cache,
  processing with one worker per core, batch, Redis), against ``exiftool -json -r`` over the same
  tree in the same run (Debian's libimage-exiftool-perl, installed on first use; it does not hash).
  The cache starts empty (its keys are under the run's prefix), so every probe is computed and
  stored; a forced re-import of the same tree then finds every probe in the cache.
  The batch service's peak RSS is sampled during the first import.
- Thumbnails of 300 12-megapixel photos through batch with one and with two processing replicas
  (one worker each, each replica pinned to a core of its own as a one-CPU pod would be; cache off;
  an empty derived store per run): items/s and the scaling ratio.
  The photos are the processing benchmark's deterministic camera JPEGs (bench/photos.py): 16 are
  generated once and made into 300 distinct files by a JPEG comment segment, so each has its own
  content address while decoding exactly like its original.
- Peak RSS of the batch service while a catalog batch (tag, non-atomic, selected by a query)
  runs over 100,000 catalog items written straight into Redis.

Everything runs on loopback against the shared Redis under a key prefix of its own, deleted after.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
import psutil
import redis
from PIL import Image

from bench.photos import photo_set
from bench.procs import free_port, suite_process
from bench.report import Row, ratio_row
from bench.tools import ToolError, ensure_apt_tool
from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import batch_service_pb2_grpc
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from mediasuite.processing.v1 import processing_service_pb2 as pb
from services.batch.catalog import CatalogItem, index_members, item_id
from services.batch.catalog_store import CatalogStore

ROOT = Path(".bench/batch")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
IMPORT_FILES = 10_000
PHOTOS = 300
BASE_PHOTOS = 16
CATALOG_ITEMS = 100_000
RSS_GOAL_MIB = 300.0
CORES = os.cpu_count() or 1
_ORDERS = ("path", "size", "modified", "taken", "quality")


def _small_jpeg(index: int) -> bytes:
    image = Image.new("RGB", (160, 120), ((index * 37) % 256, (index * 11) % 256, (index * 73) % 256))
    for offset in range(4):
        image.putpixel(((index + offset * 31) % 160, (index // 160 + offset) % 120), (255, 255, 255))
    exif = Image.Exif()
    exif[0x010F] = "Benchcam"
    exif[0x0110] = "BC-1"
    exif.get_ifd(0x8769)[0x9003] = f"2024:0{1 + index % 9}:{1 + index % 28:02d} 12:00:00"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85, exif=exif.tobytes())
    return buffer.getvalue()


def _import_tree() -> Path:
    """10,000 small JPEGs in 100 folders (made once)."""
    tree = ROOT / "media" / "import"
    marker = tree / ".complete"
    if not marker.exists():
        shutil.rmtree(tree, ignore_errors=True)
        for index in range(IMPORT_FILES):
            folder = tree / f"{index // 100:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"img{index:05d}.jpg").write_bytes(_small_jpeg(index))
        marker.write_text("ok")
    return tree


def _photo_tree() -> Path:
    """300 distinct 12 MP camera JPEGs made from 16 generated ones (a comment segment each)."""
    tree = ROOT / "media" / "photos"
    marker = tree / ".complete"
    if not marker.exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        bases = [p.read_bytes() for p in photo_set(ROOT / "base", BASE_PHOTOS)]
        for index in range(PHOTOS):
            base = bases[index % BASE_PHOTOS]
            text = f"mediasuite bench copy {index}".encode()
            comment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
            (tree / f"photo{index:03d}.jpg").write_bytes(base[:2] + comment + base[2:])
        marker.write_text("ok")
    return tree


def _process(
    name: str, tag: str, cpus: set[int] | None = None, **env: str
) -> contextlib.AbstractContextManager[tuple[str, subprocess.Popen[bytes]]]:
    return suite_process(name, ROOT / f"{name}-{tag}.log", env, cpus)


class PeakRss:
    """Samples a process's resident memory every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        """The peak in MiB."""
        return self.peak / 2**20


async def _submit(address: str, spec: bpb.BatchSpec) -> tuple[bpb.Batch, float]:
    """Run a batch to its end through SubmitBatch (every event streamed); the batch and seconds."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = batch_service_pb2_grpc.BatchServiceStub(channel)
        started = time.perf_counter()
        final = bpb.Batch()
        async for reply in stub.SubmitBatch(bpb.SubmitBatchRequest(spec=spec)):
            if reply.event.WhichOneof("event") == "finished":
                final = reply.event.finished.batch
        return final, time.perf_counter() - started


async def _start_and_wait(address: str, spec: bpb.BatchSpec) -> tuple[bpb.Batch, float]:
    """Run a batch with StartBatch and poll GetBatch until it ends (no client streaming)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = batch_service_pb2_grpc.BatchServiceStub(channel)
        started = time.perf_counter()
        batch = (await stub.StartBatch(bpb.StartBatchRequest(spec=spec), timeout=60)).batch
        while batch.state not in (6, 7, 8, 9):
            await asyncio.sleep(0.5)
            batch = (await stub.GetBatch(bpb.GetBatchRequest(batch_id=batch.id), timeout=10)).batch
        return batch, time.perf_counter() - started


def _check(batch: bpb.Batch, what: str, expected: int) -> None:
    if batch.state != bpb.BATCH_STATE_SUCCEEDED or batch.done != expected:
        raise RuntimeError(f"{what}: {bpb.BatchState.Name(batch.state)} done={batch.done} ({batch.reason})")


def _exiftool_rate(tree: Path) -> tuple[float, float]:
    exiftool = ensure_apt_tool("exiftool", "libimage-exiftool-perl")
    started = time.perf_counter()
    popen = subprocess.Popen(
        [exiftool, "-json", "-r", str(tree)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    with PeakRss(popen.pid) as rss:
        popen.wait()
    return IMPORT_FILES / (time.perf_counter() - started), rss.mib


def _import_rows(prefix: str) -> list[Row]:
    tree = _import_tree()
    media = tree.parent.resolve()
    derived = (ROOT / "derived-import").resolve()
    shutil.rmtree(derived, ignore_errors=True)
    anchor, anchor_rss = _exiftool_rate(tree)
    spec = bpb.BatchSpec(import_directory=bpb.ImportOperation(directory="import", recursive=True))
    forced = bpb.BatchSpec(
        import_directory=bpb.ImportOperation(directory="import", recursive=True, force=True)
    )
    with (
        # The cache's entries live under the run's prefix: the first import starts cold every run.
        _process("cache", "import", REDIS_URL=REDIS_URL, CACHE_REDIS_PREFIX=f"{prefix}cache:") as (cache, _),
        _process(
            "processing", "import", PROCESSING_MEDIA_ROOT=str(media), PROCESSING_DERIVED_ROOT=str(derived),
            CACHE_ADDR=cache,
        ) as (processing, _),
        _process(
            "batch", "import", REDIS_URL=REDIS_URL, BATCH_KEY_PREFIX=prefix, BATCH_MEDIA_ROOT=str(media),
            BATCH_DERIVED_ROOT=str(derived), PROCESSING_ADDR=processing, CACHE_ADDR=cache,
        ) as (batch, popen),
    ):  # fmt: skip
        with PeakRss(popen.pid) as rss:
            final, seconds = asyncio.run(_submit(batch, spec))
        _check(final, "import", IMPORT_FILES)
        again, again_seconds = asyncio.run(_submit(batch, forced))
        _check(again, "forced re-import", IMPORT_FILES)
    return [
        ratio_row(
            "batch: import 10,000 small JPEGs, probe + sha256 + catalog, whole suite (files/s)",
            IMPORT_FILES / seconds,
            anchor,
            "files/s",
            goal_ratio=1.0,
            anchor_name="`exiftool -json -r`, no hash",
        ),
        ratio_row(
            "batch: forced re-import of the same files, every probe a cache hit (files/s)",
            IMPORT_FILES / again_seconds,
            anchor,
            "files/s",
            goal_ratio=None,
            anchor_name="`exiftool -json -r`, no hash",
        ),
        ratio_row(
            "batch: peak RSS of the batch service during that import (MiB)",
            rss.mib,
            anchor_rss,
            "MiB",
            goal_ratio=None,
            higher_is_better=False,
            anchor_name="exiftool peak RSS",
        ),
    ]


def _thumbnail_rate(prefix: str, replicas: int, media: Path) -> float:
    derived = (ROOT / f"derived-thumbs-{replicas}").resolve()
    shutil.rmtree(derived, ignore_errors=True)
    penv = {
        "PROCESSING_MEDIA_ROOT": str(media),
        "PROCESSING_DERIVED_ROOT": str(derived),
        "PROCESSING_WORKERS": "1",
        "PROCESSING_CACHE": "false",
    }
    with contextlib.ExitStack() as stack:
        addresses = [
            stack.enter_context(_process("processing", f"r{replicas}-{i}", {i % CORES}, **penv))[0]
            for i in range(replicas)
        ]
        target = addresses[0] if replicas == 1 else "ipv4:" + ",".join(addresses)
        batch, _ = stack.enter_context(
            _process(
                "batch", f"thumbs-{replicas}", REDIS_URL=REDIS_URL, BATCH_KEY_PREFIX=prefix,
                BATCH_MEDIA_ROOT=str(media), BATCH_DERIVED_ROOT=str(derived), PROCESSING_ADDR=target,
                CACHE_ADDR=f"127.0.0.1:{free_port()}",
            )
        )  # fmt: skip
        if replicas == 1:
            spec = bpb.BatchSpec(import_directory=bpb.ImportOperation(directory="photos"))
            imported, _ = asyncio.run(_start_and_wait(batch, spec))
            if imported.done + imported.skipped != PHOTOS:
                raise RuntimeError(f"photo import: {imported}")
        spec = bpb.BatchSpec(
            process=bpb.ProcessOperation(
                thumbnail=bpb.ThumbnailOperation(
                    presets=["medium"], encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_JPEG)
                )
            ),
            selection=bpb.Selection(query=cpb.CatalogFilter(path_contains="photos/")),
            concurrency=4,
        )
        final, seconds = asyncio.run(_submit(batch, spec))
    _check(final, f"thumbnails with {replicas} replica(s)", PHOTOS)
    return PHOTOS / seconds


def _thumbnail_rows(prefix: str) -> list[Row]:
    media = _photo_tree().parent.resolve()
    one = _thumbnail_rate(prefix, 1, media)
    two = _thumbnail_rate(prefix, 2, media)
    return [
        ratio_row(
            "batch: thumbnails of 300 12 MP photos, 2 processing replicas vs 1 (items/s)",
            two,
            one,
            "items/s",
            goal_ratio=1.6,
            anchor_name="1 replica (1 worker each)",
        )
    ]


def _fill_catalog(prefix: str, count: int) -> None:
    """``count`` catalog items written straight into Redis (what an import of that many would leave)."""
    client = redis.Redis.from_url(REDIS_URL)
    store = CatalogStore(client, prefix)  # type: ignore[arg-type]  # only its key names are used
    now = time.time_ns()
    try:
        for start in range(0, count, 2000):
            pipe = client.pipeline(transaction=False)
            for index in range(start, min(count, start + 2000)):
                path = f"big/{index // 1000:03d}/img{index:06d}.jpg"
                item = CatalogItem(
                    id=item_id(path),
                    path=path,
                    size_bytes=100_000 + index,
                    mtime_ns=now - index * 10**9,
                    content_hash="sha256:" + f"{index:064x}",
                    format="JPEG",
                    kind="image",
                    width=4000,
                    height=3000,
                    exif={"make": "Benchcam", "model": "BC-12"},
                    created_at_ns=now,
                    updated_at_ns=now,
                )
                members = index_members(item)
                pipe.hset(
                    store.item_key(item.id), mapping={"d": item.to_json(), "r": 1, "x": json.dumps(members)}
                )
                for order, member in zip(_ORDERS, members, strict=True):
                    pipe.zadd(store.order_key(order), {member: 0})
            pipe.execute()
    finally:
        client.close()


def _catalog_rss_rows(prefix: str) -> list[Row]:
    _fill_catalog(prefix, CATALOG_ITEMS)
    media = (ROOT / "media").resolve()
    env = {
        "REDIS_URL": REDIS_URL,
        "BATCH_KEY_PREFIX": prefix,
        "BATCH_MEDIA_ROOT": str(media),
        "BATCH_DERIVED_ROOT": str((ROOT / "derived-catalog").resolve()),
        "PROCESSING_ADDR": f"127.0.0.1:{free_port()}",
        "CACHE_ADDR": f"127.0.0.1:{free_port()}",
    }
    with _process("batch", "catalog", None, **env) as (batch, popen):
        idle = psutil.Process(popen.pid).memory_info().rss / 2**20
        with PeakRss(popen.pid) as rss:
            spec = bpb.BatchSpec(
                catalog=bpb.CatalogOperation(action=bpb.CATALOG_ACTION_TAG, tags=["bench"]),
                selection=bpb.Selection(query=cpb.CatalogFilter(path_contains="big/")),
            )
            final, seconds = asyncio.run(_start_and_wait(batch, spec))
    _check(final, "catalog batch", CATALOG_ITEMS)
    meets = rss.mib < RSS_GOAL_MIB
    return [
        Row(
            "batch: peak RSS, tag batch over 100,000 catalog items (MiB)",
            rss.mib,
            RSS_GOAL_MIB,
            rss.mib / RSS_GOAL_MIB,
            "MiB",
            f"< {RSS_GOAL_MIB:g} MiB",
            meets,
            "the goal",
            f"idle {idle:.0f} MiB; {CATALOG_ITEMS / seconds:,.0f} items/s",
        )
    ]


def _delete(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=2000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    finally:
        client.close()


def run() -> list[Row]:
    """Every figure of the batch benchmark."""
    ROOT.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    for part in (_import_rows, _thumbnail_rows, _catalog_rss_rows):
        prefix = f"msbench:batch:{uuid.uuid4().hex[:8]}:"
        try:
            rows.extend(part(prefix))
        except ToolError as error:
            print(f"bench batch: {part.__name__} skipped: {error}", file=sys.stderr)
        finally:
            _delete(prefix)
    return rows

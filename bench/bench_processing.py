"""Processing: thumbnails of 12 MP camera JPEGs (long edge 256, JPEG q85, EXIF orientation honoured) per
second per core, and probe with content hash, against named anchors measured in the same run.

- ours: Thumbnail through the gRPC service (``mediasuite-processing``, one worker, the whole service
  pinned to one core; the client runs on the other core), cache off so every call does the work;
- the same Pillow pipeline called in-process (the floor the service adds to);
- libvips ``vipsthumbnail`` over the files in one process (Debian libvips-tools), pinned to one core;
- naive Pillow: open, exif_transpose, resize with Lanczos, save;
- thumbor 7 (its own virtualenv under .bench/), serving on loopback, RESPECT_ORIENTATION on;
- two workers against one (both cores), processes against threads;
- peak RSS of a worker for a 12 MP and a 50 MP input, against vipsthumbnail's peak RSS on the file;
- Probe with content hash per second against ``exiftool -json`` over the same files (one core each).

Files are generated deterministically into .bench/processing (bench/photos.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
from PIL import Image, ImageOps

from bench.photos import make_photo, photo_set
from bench.procs import free_port, pinned, suite_process
from bench.report import Row, ratio_row
from bench.tools import ToolError, ensure_apt_tool, ensure_thumbor
from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from mediasuite.processing.v1 import processing_service_pb2_grpc
from services.processing.engine.encode import EncodeSpec
from services.processing.engine.tasks import run_task
from services.processing.engine.thumbnail import ThumbnailSpec
from services.processing.limits import Limits
from services.processing.media import Source

ROOT = Path(".bench/processing")
PHOTOS = 16
PASSES = 1
ROUNDS = 3
EDGE = 256
QUALITY = 85
CONCURRENCY = 3
SERVICE_CORE = {0}
CLIENT_CORE = {1}

Notes = list[str]


@contextlib.contextmanager
def _affinity(cpus: set[int]) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpus & before or before)
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def _service(workers: int, mode: str = "process", cpus: set[int] | None = None) -> Iterator[tuple[str, int]]:
    """A mediasuite-processing process over the benchmark photos; yields (address, pid)."""
    env = {
        "PROCESSING_MEDIA_ROOT": str(ROOT.resolve()),
        "PROCESSING_DERIVED_ROOT": str((ROOT / "derived").resolve()),
        "PROCESSING_WORKERS": str(workers),
        "PROCESSING_WORKER_MODE": mode,
        "PROCESSING_CACHE": "false",
        "PROCESSING_QUEUE_SIZE": "256",
    }
    with suite_process("processing", ROOT / f"service-{workers}-{mode}.log", env, cpus) as (address, popen):
        yield address, popen.pid


def _thumb_request(name: str) -> pb.ThumbnailRequest:
    return pb.ThumbnailRequest(
        media=media_pb2.MediaRef(path=name),
        size=pb.Size(width=EDGE, height=EDGE),
        encode=pb.EncodeOptions(
            format=pb.IMAGE_FORMAT_JPEG, quality=QUALITY, output_mode=media_pb2.OUTPUT_MODE_INLINE
        ),
    )


async def _grpc_rate(address: str, names: list[str], passes: int, concurrency: int) -> float:
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 64 * 1024**2)]
    ) as channel:
        stub = processing_service_pb2_grpc.ProcessingServiceStub(channel)
        for name in names[:2]:  # warm-up
            await stub.Thumbnail(_thumb_request(name), timeout=120)
        queue = [name for _ in range(passes) for name in names]

        async def caller() -> None:
            while queue:
                reply = await stub.Thumbnail(_thumb_request(queue.pop()), timeout=120)
                assert max(reply.output.width, reply.output.height) == EDGE

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return len(names) * passes / (time.perf_counter() - started)


def _service_rate(
    names: list[str], workers: int, mode: str, cpus: set[int] | None, client: set[int] | None
) -> float:
    with (
        _service(workers, mode, cpus) as (address, _),
        _affinity(client) if client else contextlib.nullcontext(),
    ):
        return asyncio.run(_grpc_rate(address, names, PASSES, CONCURRENCY if cpus else 2 * CONCURRENCY))


def _inprocess_rate(paths: list[Path]) -> float:
    spec = ThumbnailSpec(EDGE, EDGE, encode=EncodeSpec(format="JPEG", quality=QUALITY))
    limits = Limits()
    with _affinity(SERVICE_CORE):
        run_task("thumbnail", Source("media", path=str(paths[0])), spec, limits)
        started = time.perf_counter()
        for _ in range(PASSES):
            for path in paths:
                result = run_task("thumbnail", Source("media", path=str(path)), spec, limits)
                assert max(result.value.width, result.value.height) == EDGE
        return len(paths) * PASSES / (time.perf_counter() - started)


def _naive_rate(paths: list[Path]) -> float:
    with _affinity(SERVICE_CORE):
        started = time.perf_counter()
        for path in paths:
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened)
                scale = EDGE / max(image.size)
                small = image.resize(
                    (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
                )
                small.save(io.BytesIO(), format="JPEG", quality=QUALITY)
        return len(paths) / (time.perf_counter() - started)


def _run_measured(command: list[str], cpus: set[int], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of a command pinned to ``cpus``."""
    started = time.perf_counter()
    popen = subprocess.Popen(
        [*pinned(cpus), *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(popen.pid, 0)
    elapsed = time.perf_counter() - started
    popen.returncode = os.waitstatus_to_exitcode(status)
    if popen.returncode != 0:
        error = popen.stderr.read().decode(errors="replace") if popen.stderr else ""
        raise RuntimeError(f"{command[0]} failed ({popen.returncode}): {error[-500:]}")
    return elapsed, usage.ru_maxrss * 1024


def _vips_rate(vips: str, paths: list[Path]) -> float:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "VIPS_CONCURRENCY": "1"}
        command = [vips, "-s", f"{EDGE}x{EDGE}", "-o", f"{out}/%s.jpg[Q={QUALITY}]"]
        _run_measured([*command, str(paths[0])], SERVICE_CORE, env)
        elapsed, _ = _run_measured([*command, *(str(p) for p in paths * PASSES)], SERVICE_CORE, env)
        with Image.open(Path(out) / f"{paths[1].stem}.jpg") as check:
            assert max(check.size) == EDGE
    return len(paths) * PASSES / elapsed


def _vips_rss(vips: str, path: Path) -> int:
    """vipsthumbnail's peak RSS (VmHWM, polled while it works through copies of one file): wait4's
    ru_maxrss would count the forked Python parent before exec."""
    peak = 0
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "VIPS_CONCURRENCY": "1"}
        command = [vips, "-s", f"{EDGE}x{EDGE}", "-o", f"{out}/%s.jpg[Q={QUALITY}]", *[str(path)] * 8]
        popen = subprocess.Popen([*pinned(SERVICE_CORE), *command], env=env)
        while popen.poll() is None:
            with contextlib.suppress(OSError, StopIteration, ValueError):
                status = Path(f"/proc/{popen.pid}/status").read_text()
                hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
                peak = max(peak, int(hwm.split()[1]) * 1024)
            time.sleep(0.005)
    return peak


@contextlib.contextmanager
def _thumbor(thumbor: Path, paths: list[Path], notes: Notes) -> Iterator[str]:
    """thumbor serving the photos on loopback (pinned to the service core); yields its base URL."""
    port = free_port()
    config = ROOT / "thumbor.conf"
    config.write_text(
        "\n".join(
            [
                "LOADER = 'thumbor.loaders.file_loader'",
                f"FILE_LOADER_ROOT_PATH = '{ROOT.resolve()}'",
                "STORAGE = 'thumbor.storages.no_storage'",
                "RESULT_STORAGE = 'thumbor.result_storages.no_storage'",
                "RESPECT_ORIENTATION = True",
                f"QUALITY = {QUALITY}",
                "ALLOW_UNSAFE_URL = True",
                "MAX_AGE = 0",
                "",
            ]
        )
    )
    log = (ROOT / "thumbor.log").open("wb")
    popen = subprocess.Popen(
        [
            *pinned(SERVICE_CORE),
            str(thumbor),
            "-p",
            str(port),
            "-i",
            "127.0.0.1",
            "-c",
            str(config),
            "-l",
            "error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=120) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get(f"{base}/healthcheck").status_code == 200:
                        break
                except httpx.TransportError:
                    if popen.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((ROOT / "thumbor.log").read_text()[-1500:]) from None
                    time.sleep(0.2)
            portrait = next(p for p in paths if _orientation(p) in (6, 8))
            reply = client.get(f"{base}/unsafe/fit-in/{EDGE}x{EDGE}/{portrait.name}")
            reply.raise_for_status()
            with Image.open(io.BytesIO(reply.content)) as shown:
                size = shown.size
            if size[1] != EDGE or size[0] >= EDGE:
                raise RuntimeError(f"thumbor ignored the orientation: a portrait came back {size}")
            notes.append(
                f"thumbor: a portrait (EXIF orientation 6/8) comes back {size[0]}x{size[1]}: orientation on"
            )
        yield base
    finally:
        popen.terminate()
        popen.wait(20)
        log.close()


def _orientation(path: Path) -> int:
    with Image.open(path) as image:
        return int(image.getexif().get(0x0112, 1))


def _thumbor_rate(base: str, paths: list[Path]) -> float:
    async def measure() -> float:
        async with httpx.AsyncClient(timeout=120) as client:
            queue = [p.name for p in paths]

            async def caller() -> None:
                while queue:
                    response = await client.get(f"{base}/unsafe/fit-in/{EDGE}x{EDGE}/{queue.pop()}")
                    response.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
            return len(paths) / (time.perf_counter() - started)

    with _affinity(CLIENT_CORE):
        return asyncio.run(measure())


def _worker_peak_rss(server_pid: int) -> int:
    """Peak RSS (VmHWM) of the worker processes below the server (children of its fork server)."""
    import psutil

    peak = 0
    for child in psutil.Process(server_pid).children(recursive=True):
        with contextlib.suppress(psutil.Error, OSError):
            cmdline = " ".join(child.cmdline())
            if "forkserver" in cmdline and child.ppid() == server_pid:
                continue  # the fork server itself
            status = Path(f"/proc/{child.pid}/status").read_text()
            hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
            peak = max(peak, int(hwm.split()[1]) * 1024)
    return peak


def _service_rss(name: str) -> int:
    with _service(1, "process") as (address, pid):

        async def call() -> None:
            async with grpc.aio.insecure_channel(address) as channel:
                stub = processing_service_pb2_grpc.ProcessingServiceStub(channel)
                for _ in range(3):
                    await stub.Thumbnail(_thumb_request(name), timeout=300)

        asyncio.run(call())
        return _worker_peak_rss(pid)


async def _probe_rate(address: str, names: list[str]) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = processing_service_pb2_grpc.ProcessingServiceStub(channel)
        queue = list(names)

        async def caller() -> None:
            while queue:
                reply = await stub.Probe(
                    pb.ProbeRequest(media=media_pb2.MediaRef(path=queue.pop()), content_hash=True), timeout=60
                )
                assert reply.info.content_hash.startswith("sha256:")
                assert reply.info.exif.make == "Benchcam"

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
        return len(names) / (time.perf_counter() - started)


def _best(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


def run() -> list[Row]:  # one benchmark, many anchors
    """Generate the photos, install the anchors, measure everything (best of ROUNDS); return the rows."""
    notes: Notes = [f"best of {ROUNDS} interleaved rounds on a shared 2-core machine"]
    paths = photo_set(ROOT, PHOTOS)
    names = [p.name for p in paths]
    big = ROOT / "photo_v1_8660x5773_000.jpg"
    if not big.exists():
        big.write_bytes(make_photo(0, 8660, 5773))
    vips: str | None = None
    try:
        vips = ensure_apt_tool("vipsthumbnail", "libvips-tools")
    except ToolError as error:
        notes.append(f"vipsthumbnail unavailable: {error}")
    thumbor: Path | None = None
    try:
        thumbor = ensure_thumbor(ROOT.parent / "thumbor-venv")
    except ToolError as error:
        notes.append(f"thumbor could not be installed: {error}")

    series: dict[str, list[float | None]] = {k: [] for k in ("ours", "inprocess", "vips", "thumbor", "naive")}
    with contextlib.ExitStack() as stack:
        address, _ = stack.enter_context(_service(1, "process", SERVICE_CORE))
        base = None
        if thumbor is not None:
            try:
                base = stack.enter_context(_thumbor(thumbor, paths, notes))
            except (RuntimeError, httpx.HTTPError) as error:
                notes.append(f"thumbor could not be run: {error}")
        for _ in range(ROUNDS):
            with _affinity(CLIENT_CORE):
                series["ours"].append(asyncio.run(_grpc_rate(address, names, 1, CONCURRENCY)))
            series["inprocess"].append(_inprocess_rate(paths))
            series["vips"].append(_vips_rate(vips, paths) if vips else None)
            series["thumbor"].append(_thumbor_rate(base, paths) if base else None)
            series["naive"].append(_naive_rate(paths[:6]))
    best = {k: _best(v) for k, v in series.items()}
    ours = best["ours"] or 0.0
    title = f"processing: 12 MP -> {EDGE} px JPEG q{QUALITY}, per core"
    rows = [
        ratio_row(
            title,
            ours,
            best["inprocess"] or 0,
            "img/s",
            goal_ratio=0.9,
            anchor_name="same pipeline in-process",
        )
    ]
    if best["vips"]:
        rows.append(
            ratio_row(title, ours, best["vips"], "img/s", goal_ratio=1.3, anchor_name="vipsthumbnail")
        )
    if best["thumbor"]:
        rows.append(
            ratio_row(
                title,
                ours,
                best["thumbor"],
                "img/s",
                goal_ratio=2.5,
                anchor_name="thumbor 7 (orientation on)",
            )
        )
    rows.append(
        ratio_row(title, ours, best["naive"] or 0, "img/s", goal_ratio=None, anchor_name="naive Pillow")
    )

    scaling: dict[str, list[float | None]] = {"one": [], "two": [], "threads": []}
    for _ in range(ROUNDS):
        scaling["one"].append(_service_rate(names, 1, "process", None, None))
        scaling["two"].append(_service_rate(names, 2, "process", None, None))
        scaling["threads"].append(_service_rate(names, 2, "thread", None, None))
    one, two, threads = (_best(scaling[k]) or 0.0 for k in ("one", "two", "threads"))
    rows.append(
        ratio_row(
            "processing: 2 workers vs 1 (2 cores)", two, one, "img/s", goal_ratio=1.7, anchor_name="1 worker"
        )
    )
    rows.append(
        ratio_row(
            "processing: 2 worker processes vs 2 threads",
            two,
            threads,
            "img/s",
            goal_ratio=None,
            anchor_name="2 threads",
        )
    )

    mib = 1024**2
    for label, path in (("12 MP", paths[0]), ("50 MP", big)):
        vips_rss = _vips_rss(vips, path) if vips else 0
        worker_rss = _service_rss(path.name)
        rows.append(
            ratio_row(
                f"processing: peak RSS per worker, {label}", worker_rss / mib, vips_rss / mib, "MiB",
                goal_ratio=None, higher_is_better=False, anchor_name="vipsthumbnail process",
            )
        )  # fmt: skip

    try:
        exiftool = ensure_apt_tool("exiftool", "libimage-exiftool-perl")
        probes: list[float | None] = []
        tools: list[float | None] = []
        with _service(1, "process", SERVICE_CORE) as (address, _):
            for _ in range(ROUNDS):
                with _affinity(CLIENT_CORE):
                    probes.append(asyncio.run(_probe_rate(address, names)))
                elapsed, _ = _run_measured([exiftool, "-json", *(str(p) for p in paths)], SERVICE_CORE)
                tools.append(len(paths) / elapsed)
        rows.append(
            ratio_row(
                "processing: probe + sha256, per core", _best(probes) or 0, _best(tools) or 0, "files/s",
                goal_ratio=None, anchor_name="exiftool -json (no hash)",
            )
        )  # fmt: skip
    except (ToolError, RuntimeError) as error:
        notes.append(f"exiftool unavailable: {error}")
    rows[0] = Row(**{**rows[0].__dict__, "note": "; ".join(notes)})
    shutil.rmtree(ROOT / "derived", ignore_errors=True)
    return rows

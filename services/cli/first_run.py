"""The first run of ``mediasuite up``: a sample library, generated, imported and thumbnailed.

When the suite starts on its default media library (``STATE_DIR/media``) and finds it empty, it
writes the generated sample (services/sample/library.py) while the services start, then has the
batch service import it, make gallery thumbnails of every item and analyse the photos' quality,
showing each step's progress from the batch's event stream. A library the user chose
(``PROCESSING_MEDIA_ROOT`` and friends) or one that holds anything is never touched;
``--no-sample`` or ``MEDIASUITE_SAMPLE=off`` turns the sample off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from rich.progress import Progress, TaskID

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import batch_service_pb2_grpc
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from services.runtime.config import Env
from services.runtime.tls import TlsConfig
from services.sample.library import SAMPLE, SAMPLE_DIR, library_is_empty

__all__ = [
    "SAMPLE_ENV",
    "SampleError",
    "SamplePlan",
    "SampleResult",
    "import_sample",
    "plan_sample",
]

SAMPLE_ENV = "MEDIASUITE_SAMPLE"
# Presets made for every sample item: what the dashboard shows (small) and the gallery size.
SAMPLE_PRESETS = ("small", "gallery")
_BATCH_DEADLINE = 600.0


@dataclass(frozen=True)
class SamplePlan:
    """Whether this start writes the sample, and why (shown when it does not)."""

    write: bool
    reason: str


@dataclass(frozen=True)
class SampleResult:
    """What the sample's batches did."""

    imported: int
    thumbnails: int
    analysed: int


class SampleError(RuntimeError):
    """A sample batch did not succeed; the message says which and what to do."""


def plan_sample(
    environ: Mapping[str, str], media_root: Path, *, no_sample: bool, chosen_by: str | None
) -> SamplePlan:
    """Decide whether to write the sample. ConfigError when MEDIASUITE_SAMPLE is not a boolean.

    ``chosen_by`` names the variable the user chose the media library with (None: the default).
    """
    wanted = Env(environ).flag(
        SAMPLE_ENV, True, "generate and import a sample library when the default media library is empty"
    )
    if no_sample:
        return SamplePlan(False, "off (--no-sample)")
    if not wanted:
        return SamplePlan(False, f"off ({SAMPLE_ENV}={environ.get(SAMPLE_ENV, '')})")
    if chosen_by is not None:
        return SamplePlan(False, f"not written: the media library was chosen with {chosen_by}")
    if not library_is_empty(media_root):
        return SamplePlan(False, "not written: the media library is not empty")
    return SamplePlan(True, f"{len(SAMPLE)} files into {media_root / SAMPLE_DIR}")


def _specs() -> list[tuple[str, bpb.BatchSpec]]:
    everything = bpb.Selection(query=cpb.CatalogFilter(path_contains=f"{SAMPLE_DIR}/"))
    photos = bpb.Selection(query=cpb.CatalogFilter(path_contains=f"{SAMPLE_DIR}/", kind=cpb.MEDIA_KIND_IMAGE))
    return [
        (
            "importing the sample",
            bpb.BatchSpec(
                import_directory=bpb.ImportOperation(directory=SAMPLE_DIR, recursive=True),
                label="sample: import",
            ),
        ),
        (
            "gallery thumbnails",
            bpb.BatchSpec(
                selection=everything,
                process=bpb.ProcessOperation(thumbnail=bpb.ThumbnailOperation(presets=SAMPLE_PRESETS)),
                label="sample: thumbnails",
            ),
        ),
        (
            "quality analysis",
            bpb.BatchSpec(
                selection=photos,
                process=bpb.ProcessOperation(analyze_quality=bpb.AnalyzeQualityOperation()),
                label="sample: quality",
            ),
        ),
    ]


async def _run_batch(
    stub: batch_service_pb2_grpc.BatchServiceStub, spec: bpb.BatchSpec, progress: Progress, task: TaskID
) -> bpb.Batch:
    final = bpb.Batch()
    call: Any = stub.SubmitBatch(bpb.SubmitBatchRequest(spec=spec), timeout=_BATCH_DEADLINE)
    async for reply in call:
        event = reply.event
        which = event.WhichOneof("event")
        if which == "accepted" and event.accepted.total >= 0:
            progress.update(task, total=event.accepted.total)
        elif which == "progress" and event.progress.total >= 0:
            progress.update(task, total=event.progress.total)
        elif which in ("item_done", "item_skipped", "item_failed"):
            progress.advance(task)
        elif which == "finished":
            final = event.finished.batch
    return final


async def import_sample(batch_address: str, progress: Progress, tls: TlsConfig | None = None) -> SampleResult:
    """Import the sample, thumbnail it and analyse its photos, one batch each, with progress.

    SampleError when a batch does not succeed or the batch service cannot be called.
    """
    done: list[int] = []
    channel_to = (
        grpc.aio.insecure_channel(batch_address)
        if tls is None
        else grpc.aio.secure_channel(batch_address, tls.channel_credentials())
    )
    async with channel_to as channel:
        stub = batch_service_pb2_grpc.BatchServiceStub(channel)
        for description, spec in _specs():
            task = progress.add_task(description, total=None)
            try:
                final = await _run_batch(stub, spec, progress, task)
            except grpc.aio.AioRpcError as error:
                raise SampleError(
                    f"{description}: {error.code().name}: {error.details()}; the files are in the library, "
                    f"import them with `mediactl import {SAMPLE_DIR}`"
                ) from None
            if final.state != bpb.BATCH_STATE_SUCCEEDED or final.failed:
                state = bpb.BatchState.Name(final.state).removeprefix("BATCH_STATE_").lower()
                why = f", {final.reason}" if final.reason else ""
                raise SampleError(
                    f"{description}: batch {final.id} {state} ({final.failed} failed{why}); "
                    f"see `mediactl batch watch {final.id}`"
                )
            progress.update(task, total=final.total, completed=final.total)
            done.append(final.done)
    imported, thumbnailed, analysed = done
    return SampleResult(imported, thumbnailed * len(SAMPLE_PRESETS), analysed)

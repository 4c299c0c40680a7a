"""Processing operations over a selection, item by item, through the processing service.

Non-atomic batches let processing store outputs in the derived store itself (they are published as
each item finishes). Atomic batches take outputs inline and stage them (``staging.py``), so nothing
is published before the commit.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from services.batch.catalog import OutputRef
from services.batch.changes import Change
from services.batch.processing_client import ProcessingClient, media_of_image, media_of_video
from services.batch.staging import Staging
from services.batch.work import Entry, ItemFailure, Outcome, UnitContext
from services.runtime.errors import InvalidArgument

__all__ = ["ProcessWorker", "check_operation", "operation_name"]


def operation_name(operation: bpb.ProcessOperation) -> str:
    """ "thumbnail", "convert", ... (INVALID_ARGUMENT when none is set)."""
    which = operation.WhichOneof("operation")
    if which is None:
        raise InvalidArgument(
            "spec.process names no operation: set thumbnail, convert, optimize, analyze_quality, enhance, "
            "watermark or probe",
            field="spec.process.operation",
        )
    return which


def _enum(value: int, enum: Any, field: str) -> None:
    if value not in enum.values():
        raise InvalidArgument(f"{field} {value} is not a known value", field=field)


def _encode(encode: pb.EncodeOptions, field: str) -> None:
    _enum(encode.format, pb.ImageFormat, f"{field}.format")
    _enum(encode.metadata, pb.MetadataPolicy, f"{field}.metadata")
    if not 0 <= encode.quality <= 100:
        raise InvalidArgument(
            f"{field}.quality must be 0-100 (got {encode.quality})", field=f"{field}.quality"
        )


def _ratio(value: float, field: str) -> None:
    if not 0 <= value <= 1:
        raise InvalidArgument(f"{field} must be between 0 and 1 (got {value:g})", field=field)


def _check_thumbnail(op: bpb.ThumbnailOperation, presets: dict[str, int], field: str) -> None:
    if not op.presets:
        raise InvalidArgument(f"{field}.presets is empty: name at least one preset", field=f"{field}.presets")
    for index, preset in enumerate(op.presets):
        if preset not in presets:
            raise InvalidArgument(
                f"{field}.presets[{index}] {preset!r} is not a preset of the processing service; "
                f"known: {', '.join(presets)}",
                field=f"{field}.presets[{index}]",
            )
    if len(set(op.presets)) != len(op.presets):
        raise InvalidArgument(f"{field}.presets names a preset twice", field=f"{field}.presets")
    _enum(op.fit, pb.FitMode, f"{field}.fit")
    _enum(op.gravity, pb.Gravity, f"{field}.gravity")
    _encode(op.encode, f"{field}.encode")


def check_operation(operation: bpb.ProcessOperation, presets: dict[str, int]) -> None:
    """Refuse unknown or out-of-range parameters before any work starts."""
    name = operation_name(operation)
    field = f"spec.process.{name}"
    if name == "thumbnail":
        _check_thumbnail(operation.thumbnail, presets, field)
    elif name == "convert":
        _encode(operation.convert.encode, f"{field}.encode")
        if operation.convert.encode.format == pb.IMAGE_FORMAT_UNSPECIFIED:
            raise InvalidArgument(f"{field}.encode.format is required", field=f"{field}.encode.format")
    elif name == "optimize":
        _encode(operation.optimize.encode, f"{field}.encode")
        _ratio(operation.optimize.min_ssim, f"{field}.min_ssim")
    elif name == "enhance":
        for index, step in enumerate(operation.enhance.steps):
            _enum(step, pb.EnhanceStep, f"{field}.steps[{index}]")
            if step == pb.ENHANCE_STEP_UNSPECIFIED:
                raise InvalidArgument(
                    f"{field}.steps[{index}] is unspecified", field=f"{field}.steps[{index}]"
                )
        _ratio(operation.enhance.strength, f"{field}.strength")
        _encode(operation.enhance.encode, f"{field}.encode")
    elif name == "watermark":
        mark = operation.watermark
        if not 1 <= len(mark.text.text) <= 200:
            raise InvalidArgument(f"{field}.text.text must be 1-200 characters", field=f"{field}.text.text")
        _enum(mark.position, pb.Gravity, f"{field}.position")
        _ratio(mark.opacity, f"{field}.opacity")
        _encode(mark.encode, f"{field}.encode")


def _format_name(encode: pb.EncodeOptions) -> str:
    return pb.ImageFormat.Name(encode.format).removeprefix("IMAGE_FORMAT_") if encode.format else "source"


class ProcessWorker:
    """One processing operation per item."""

    unit_size = 1

    def __init__(self, client: ProcessingClient, staging: Staging, operation: bpb.ProcessOperation) -> None:
        self.client = client
        self.staging = staging
        self.operation = operation
        self.name = operation_name(operation)

    async def run(self, context: UnitContext, entries: list[Entry]) -> list[Outcome]:
        """Each entry on its own (units hold one item)."""
        return [await self._one(context, entry) for entry in entries]

    async def _one(self, context: UnitContext, entry: Entry) -> Outcome:
        started = time.perf_counter()
        if entry.item is None:
            failure = ItemFailure(5, "NOT_FOUND", f"item {entry.item_id} is no longer in the catalog")
            return Outcome(entry.index, entry.path, entry.item_id, "failed", failure=failure)
        try:
            change, outputs, attempts = await self._work(context, entry)
        except ItemFailure as failure:
            return Outcome(
                entry.index, entry.path, entry.item_id, "failed", failure=failure, attempts=failure.attempts
            )
        return Outcome(
            entry.index, entry.path, entry.item_id, "done", change=change, outputs=outputs,
            attempts=attempts, duration_s=time.perf_counter() - started,
        )  # fmt: skip

    async def _output(self, context: UnitContext, output: media_pb2.Output) -> OutputRef:
        stored = output.stored_path
        if output.WhichOneof("location") == "inline":
            stored = await asyncio.to_thread(
                partial(
                    self.staging.stage,
                    context.batch_id,
                    output.content_key,
                    output.media_type,
                    width=output.width,
                    height=output.height,
                    data=output.inline,
                )
            )
        return OutputRef(
            output.content_key, stored, output.media_type, output.size_bytes, output.width, output.height
        )

    async def _work(self, context: UnitContext, entry: Entry) -> tuple[Change, tuple[OutputRef, ...], int]:
        assert entry.item is not None  # noqa: S101 (narrows a type: an invariant of the code above, not a check of input)
        media = media_pb2.MediaRef(path=entry.item.path)
        mode = media_pb2.OUTPUT_MODE_INLINE if context.atomic else media_pb2.OUTPUT_MODE_STORE
        deadline = context.item_deadline_s
        op = self.operation
        name = self.name
        attempts = 0
        if name == "probe":
            if entry.item.kind == "video":
                video, attempts = await self.client.invoke(
                    "ProbeVideo", pb.ProbeVideoRequest(media=media, content_hash=True), deadline
                )
                found = media_of_video(video.info, entry.item.path, entry.item.mtime_ns)
            else:
                reply, attempts = await self.client.invoke(
                    "Probe", pb.ProbeRequest(media=media, content_hash=True), deadline
                )
                found = media_of_image(reply.info)
            return Change("probe", path=entry.path, media=found), (), attempts
        if name == "analyze_quality":
            reply, attempts = await self.client.invoke(
                "AnalyzeQuality", pb.AnalyzeQualityRequest(media=media), deadline
            )
            score = round(reply.report.score, 3)
            change = Change(
                "output", path=entry.path, operation=name, parameters=f"score={score:g}", quality_score=score
            )
            return change, (), attempts
        outputs: list[OutputRef] = []
        texts: list[str] = []
        if name == "thumbnail":
            presets = await self.client.presets(deadline)
            encode = pb.EncodeOptions()
            encode.CopyFrom(op.thumbnail.encode)
            encode.output_mode = mode
            for preset in op.thumbnail.presets:
                if entry.item.kind == "video":
                    edge = presets[preset]
                    request: Any = pb.VideoThumbnailRequest(
                        media=media, representative=True, size=pb.Size(width=edge, height=edge), encode=encode
                    )
                    reply, used = await self.client.invoke("VideoThumbnail", request, deadline)
                else:
                    request = pb.ThumbnailRequest(
                        media=media, preset=preset, fit=op.thumbnail.fit, gravity=op.thumbnail.gravity,
                        encode=encode,
                    )  # fmt: skip
                    reply, used = await self.client.invoke("Thumbnail", request, deadline)
                attempts += used
                outputs.append(await self._output(context, reply.output))
                texts.append(f"preset={preset} format={_format_name(encode)}")
        else:
            method, request = self._request(media, mode)
            reply, attempts = await self.client.invoke(method, request, deadline)
            outputs.append(await self._output(context, reply.output))
            texts.append(f"format={_format_name(request.encode)}")
        change = Change(
            "output", path=entry.path, operation=name, parameters="; ".join(texts), outputs=tuple(outputs)
        )
        return change, tuple(outputs), attempts

    def _request(self, media: media_pb2.MediaRef, mode: int) -> tuple[str, Any]:
        op = self.operation
        if self.name == "convert":
            request: Any = pb.ConvertRequest(media=media, encode=op.convert.encode)
            method = "Convert"
        elif self.name == "optimize":
            request = pb.OptimizeRequest(
                media=media, encode=op.optimize.encode, min_ssim=op.optimize.min_ssim
            )
            method = "Optimize"
        elif self.name == "enhance":
            request = pb.EnhanceRequest(
                media=media, steps=op.enhance.steps, strength=op.enhance.strength, encode=op.enhance.encode
            )
            method = "Enhance"
        else:
            request = pb.WatermarkRequest(
                media=media,
                text=op.watermark.text,
                position=op.watermark.position,
                opacity=op.watermark.opacity,
                tile=op.watermark.tile,
                encode=op.watermark.encode,
            )
            method = "Watermark"
        request.encode.output_mode = mode
        return method, request

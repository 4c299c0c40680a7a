"""The operations a worker runs, by name: each reads its source, hashes it when the hash is not known,
and calls one engine function. What goes in and out is plain picklable data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import PIL

from services.processing.engine.edits import (
    CropSpec,
    WatermarkSpec,
    crop_image,
    enhance_image,
    watermark_image,
)
from services.processing.engine.encode import EncodeSpec
from services.processing.engine.frames import extract_frames
from services.processing.engine.probe import ProbeOptions, probe_image
from services.processing.engine.quality import analyze_quality
from services.processing.engine.thumbnail import ThumbnailSpec, make_thumbnail
from services.processing.engine.transcode import convert_image, optimize_image
from services.processing.engine.video import probe_video, validate_video, video_thumbnail
from services.processing.limits import Limits
from services.processing.media import Source, content_hash, read_source

__all__ = ["ENGINE_VERSION", "TASKS", "TaskResult", "run_task"]

# Part of every content key: a new Pillow, PyAV or pipeline revision makes new outputs.
PIPELINE_REVISION = 1
ENGINE_VERSION = f"pillow {PIL.__version__}; pyav {av.__version__}; pipeline {PIPELINE_REVISION}"


@dataclass(frozen=True)
class TaskResult:
    """An operation's result and the content hash of its source."""

    content_hash: str
    value: Any


def _thumbnail(data: bytes, source: Source, spec: ThumbnailSpec, limits: Limits) -> Any:
    return make_thumbnail(data, source, spec, limits)


def _probe(data: bytes, source: Source, options: ProbeOptions, limits: Limits) -> Any:
    return probe_image(data, source, options, limits)


def _convert(data: bytes, source: Source, spec: EncodeSpec, limits: Limits) -> Any:
    return convert_image(data, source, spec, limits)


def _optimize(data: bytes, source: Source, params: tuple[EncodeSpec, float], limits: Limits) -> Any:
    return optimize_image(data, source, params[0], params[1], limits)


def _analyze(data: bytes, source: Source, params: None, limits: Limits) -> Any:
    return analyze_quality(data, source, limits)


def _enhance(data: bytes, source: Source, params: tuple[list[str], float, EncodeSpec], limits: Limits) -> Any:
    return enhance_image(data, source, params[0], params[1], params[2], limits=limits)


def _crop(data: bytes, source: Source, params: tuple[CropSpec, EncodeSpec], limits: Limits) -> Any:
    return crop_image(data, source, params[0], params[1], limits)


def _watermark(
    data: bytes, source: Source, params: tuple[WatermarkSpec, EncodeSpec, Source | None], limits: Limits
) -> Any:
    spec, encode_spec, overlay_source = params
    overlay = (read_source(overlay_source, limits), overlay_source) if overlay_source is not None else None
    return watermark_image(data, source, spec, encode_spec, limits=limits, overlay=overlay)


def _probe_video(data: bytes, source: Source, params: None, limits: Limits) -> Any:
    return probe_video(data, source, limits)


def _video_thumbnail(
    data: bytes, source: Source, params: tuple[float | None, tuple[int, int], EncodeSpec], limits: Limits
) -> Any:
    return video_thumbnail(data, source, params[0], params[1], params[2], limits=limits)


def _validate_video(data: bytes, source: Source, max_errors: int, limits: Limits) -> Any:
    return validate_video(data, source, max_errors, limits)


def _extract_frames(
    data: bytes, source: Source, params: tuple[int, tuple[int, int] | None, EncodeSpec], limits: Limits
) -> Any:
    return extract_frames(data, source, params[0], params[1], params[2], limits=limits)


TASKS: dict[str, Callable[[bytes, Source, Any, Limits], Any]] = {
    "thumbnail": _thumbnail,
    "probe": _probe,
    "convert": _convert,
    "optimize": _optimize,
    "analyze_quality": _analyze,
    "enhance": _enhance,
    "crop": _crop,
    "watermark": _watermark,
    "probe_video": _probe_video,
    "video_thumbnail": _video_thumbnail,
    "validate_video": _validate_video,
    "extract_frames": _extract_frames,
}


def run_task(name: str, source: Source, params: Any, limits: Limits, need_hash: bool = True) -> TaskResult:
    """Read the source, hash it unless known or not needed, run the task called ``name``."""
    data = read_source(source, limits)
    digest = source.content_hash or (content_hash(data) if need_hash else "")
    return TaskResult(digest, TASKS[name](data, source, params, limits))

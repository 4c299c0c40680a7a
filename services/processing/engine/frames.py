"""Frames of an animated GIF/WebP/PNG (or, through video.py, of a video), up to a frame limit."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageSequence

from services.processing.engine.decode import READ_FORMATS, decoding, describe_bytes, open_image
from services.processing.engine.encode import Encoded, EncodeSpec, encode, output_format
from services.processing.engine.geometry import plan_fit
from services.processing.engine.pixels import to_srgb, workable
from services.processing.engine.video import first_video_frames
from services.processing.limits import Limits
from services.processing.media import Source

__all__ = ["ExtractedFrame", "FramesResult", "extract_frames"]


@dataclass(frozen=True)
class ExtractedFrame:
    """One frame: its index, position and display duration in seconds, and its encoding."""

    index: int
    timestamp_s: float
    duration_s: float
    encoded: Encoded


@dataclass(frozen=True)
class FramesResult:
    """The frames returned and how many the source has."""

    frames: list[ExtractedFrame]
    total_frames: int


def _is_video(data: bytes) -> bool:
    return "video" in describe_bytes(data)


def extract_frames(
    data: bytes, source: Source, count: int, box: tuple[int, int] | None, spec: EncodeSpec, *, limits: Limits
) -> FramesResult:
    """The first ``count`` frames (already bounded by the caller), each fitted into ``box`` when given."""
    if _is_video(data):
        found, total = first_video_frames(data, source, count, box, spec, limits=limits)
        frames = [ExtractedFrame(i, t, d, e) for i, (t, d, e) in enumerate(found)]
        return FramesResult(frames, max(total, len(frames)))
    image = open_image(data, source, limits)
    total = int(getattr(image, "n_frames", 1) or 1)
    limits.check_frames(total, f"{source.label} with {total} frames")
    source_format = image.format or ""
    fallback = "PNG" if source_format in ("GIF", "PNG") else source_format
    fmt = output_format(spec, fallback if fallback in READ_FORMATS else "PNG")
    extracted: list[ExtractedFrame] = []
    position = 0.0
    with decoding(source):
        for index, frame in enumerate(ImageSequence.Iterator(image)):
            if index >= count:
                break
            duration = float(frame.info.get("duration", 0) or 0) / 1000
            still = to_srgb(workable(frame.convert("RGBA")), frame.info.get("icc_profile"))
            if box is not None:
                plan = plan_fit(still.size, box, "contain", allow_upscale=False)
                if plan.resize != still.size:
                    still = still.resize(plan.resize, Image.Resampling.LANCZOS)
            extracted.append(ExtractedFrame(index, position, duration, encode(still, spec, fmt)))
            position += duration
    return FramesResult(extracted, total)

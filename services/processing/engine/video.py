"""Video with PyAV (its wheels carry FFmpeg): probe, a thumbnail from a frame at a time or from a
representative non-blank frame, validation that decodes every frame, and the first frames."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import av
import av.logging
import numpy as np
from PIL import Image

from services.processing.engine.decode import describe_bytes
from services.processing.engine.encode import Encoded, EncodeSpec, encode, output_format
from services.processing.engine.geometry import plan_fit
from services.processing.limits import Limits
from services.processing.media import Source
from services.runtime.errors import InvalidArgument

__all__ = [
    "DecodeProblem",
    "StreamData",
    "ValidationResult",
    "VideoData",
    "first_video_frames",
    "open_container",
    "probe_video",
    "validate_video",
    "video_thumbnail",
]

# A representative frame is looked for in the first REPRESENTATIVE_SECONDS (at most this many frames).
REPRESENTATIVE_SECONDS = 30.0
REPRESENTATIVE_FRAMES = 300
# A frame is blank (black, white or flat) when the std of its luminance is below this (0-255).
BLANK_STD = 12.0
_KINDS = {"video": "video", "audio": "audio", "subtitle": "subtitle", "data": "data", "attachment": "data"}


@dataclass(frozen=True)
class StreamData:
    """One stream of a container."""

    index: int
    kind: str
    codec: str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    bit_rate: int = 0
    duration_s: float = 0.0
    frame_count: int = 0
    sample_rate: int = 0
    channels: int = 0
    pixel_format: str = ""


@dataclass(frozen=True)
class VideoData:
    """What ProbeVideo reports."""

    container: str
    duration_s: float
    bit_rate: int
    streams: list[StreamData]
    size_bytes: int


@contextmanager
def open_container(data: bytes, source: Source) -> Iterator[Any]:
    """An input container over the bytes; INVALID_ARGUMENT when FFmpeg cannot read them."""
    try:
        container = av.open(BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as error:
        raise InvalidArgument(
            f"{source.label} is not a video FFmpeg can read "
            f"(the bytes look like {describe_bytes(data)}): {error}",
            field=source.field,
            reason="UNSUPPORTED_MEDIA",
        ) from None
    try:
        yield container
    finally:
        container.close()


def _seconds(value: Any, base: Any) -> float:
    return float(value * base) if value is not None and base is not None else 0.0


def _stream(stream: Any) -> StreamData:
    kind = _KINDS.get(stream.type, "data")
    context = stream.codec_context
    common = {
        "index": stream.index,
        "kind": kind,
        "codec": (context.name if context is not None else "") or "",
        "bit_rate": int(getattr(context, "bit_rate", 0) or stream.bit_rate or 0)
        if context is not None
        else 0,
        "duration_s": _seconds(stream.duration, stream.time_base),
        "frame_count": int(stream.frames or 0),
    }
    if kind == "video":
        rate = stream.average_rate or stream.guessed_rate
        return StreamData(
            **common,
            width=int(context.width or 0),
            height=int(context.height or 0),
            fps=float(rate) if rate else 0.0,
            pixel_format=context.format.name if context.format is not None else "",
        )
    if kind == "audio":
        return StreamData(
            **common,
            sample_rate=int(context.sample_rate or 0),
            channels=int(context.layout.nb_channels if context.layout is not None else 0),
            pixel_format=context.format.name if context.format is not None else "",
        )
    return StreamData(**common)


def probe_video(data: bytes, source: Source, limits: Limits) -> VideoData:
    """Container, duration, bit rate and streams, from the headers."""
    with open_container(data, source) as container:
        streams = [_stream(stream) for stream in container.streams]
        for stream in streams:
            if stream.kind == "video" and stream.width and stream.height:
                limits.check_pixels(stream.width, stream.height)
        return VideoData(
            container=container.format.name,
            duration_s=_seconds(container.duration, 1 / av.time_base) if container.duration else 0.0,
            bit_rate=int(container.bit_rate or 0),
            streams=streams,
            size_bytes=len(data),
        )


def _video_stream(container: Any, source: Source, limits: Limits) -> Any:
    if not container.streams.video:
        raise InvalidArgument(f"{source.label} has no video stream", field=source.field)
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1  # the worker pool is the parallelism
    limits.check_pixels(int(stream.codec_context.width or 0), int(stream.codec_context.height or 0))
    return stream


def _is_blank(frame: Any) -> bool:
    grey = frame.reformat(width=64, height=36, format="gray").to_ndarray()
    return bool(np.asarray(grey, dtype=np.float32).std() < BLANK_STD)


def _decode(container: Any, stream: Any, source: Source, limits: Limits) -> Iterator[Any]:
    """Decoded frames; corrupt packets are skipped here (ValidateVideo reports them)."""
    count = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError:
            continue
        for frame in frames:
            count += 1
            if count > limits.max_frames:
                limits.check_frames(count, f"{source.label} frames decoded")
            yield frame


def video_thumbnail(
    data: bytes,
    source: Source,
    timestamp_s: float | None,
    box: tuple[int, int],
    spec: EncodeSpec,
    *,
    limits: Limits,
) -> tuple[Encoded, float]:
    """A thumbnail of the frame at ``timestamp_s`` (or a representative one) and that frame's time."""
    with open_container(data, source) as container:
        stream = _video_stream(container, source, limits)
        chosen: Any = None
        if timestamp_s is not None:
            duration = _seconds(container.duration, 1 / av.time_base) if container.duration else 0.0
            if duration and timestamp_s > duration:
                raise InvalidArgument(
                    f"timestamp {timestamp_s:.3f}s is past the end of the video ({duration:.3f}s)",
                    field="timestamp",
                )
            if timestamp_s > 0 and stream.time_base:
                container.seek(int(timestamp_s / stream.time_base), stream=stream, backward=True)
            for frame in _decode(container, stream, source, limits):
                chosen = frame
                if frame.time is not None and frame.time >= timestamp_s - 1e-3:
                    break
        else:
            busiest, busiest_std = None, -1.0
            for index, frame in enumerate(_decode(container, stream, source, limits)):
                if not _is_blank(frame):
                    chosen = frame
                    break
                std = float(np.asarray(frame.reformat(width=64, height=36, format="gray").to_ndarray()).std())
                if std > busiest_std:
                    busiest, busiest_std = frame, std
                if index >= REPRESENTATIVE_FRAMES or (frame.time or 0) > REPRESENTATIVE_SECONDS:
                    break
            chosen = chosen or busiest
        if chosen is None:
            raise InvalidArgument(f"{source.label} has no decodable video frame", field=source.field)
        image: Image.Image = chosen.to_image()
        plan = plan_fit(image.size, box, "contain", allow_upscale=False)
        if plan.resize != image.size:
            image = image.resize(plan.resize, Image.Resampling.LANCZOS, reducing_gap=2.0)
        fmt = output_format(spec, "JPEG")
        return encode(image, spec, fmt), float(chosen.time or 0.0)


@dataclass(frozen=True)
class DecodeProblem:
    """One decoding error and where it happened."""

    timestamp_s: float
    stream_index: int
    message: str


@dataclass(frozen=True)
class ValidationResult:
    """What ValidateVideo found."""

    valid: bool
    frames_decoded: int
    errors: list[DecodeProblem]
    decoded_duration_s: float


def validate_video(data: bytes, source: Source, max_errors: int, limits: Limits) -> ValidationResult:
    """Decode every video frame; report decoder errors, corrupt frames and error log lines with times."""
    problems: list[DecodeProblem] = []
    frames = 0
    first_time: float | None = None
    last_time = 0.0
    with open_container(data, source) as container:
        stream = _video_stream(container, source, limits)
        previous_level = av.logging.get_level()
        av.logging.set_level(av.logging.ERROR)
        try:
            with av.logging.Capture() as logs:
                seen_logs = 0
                for packet in container.demux(stream):
                    at = _seconds(packet.pts if packet.pts is not None else packet.dts, stream.time_base)
                    failed = False
                    try:
                        decoded = packet.decode()
                    except av.FFmpegError as error:
                        problems.append(DecodeProblem(at, stream.index, f"decoder error: {error}"))
                        decoded, failed = [], True
                    for frame in decoded:
                        frames += 1
                        limits.check_frames(frames, f"{source.label} frames decoded")
                        when = float(frame.time) if frame.time is not None else at
                        first_time = when if first_time is None else first_time
                        last_time = max(last_time, when)
                        if frame.is_corrupt:
                            problems.append(
                                DecodeProblem(when, stream.index, "frame decoded with corruption")
                            )
                    for level, name, message in logs[seen_logs:]:
                        if level <= av.logging.ERROR and not failed:  # a raised error already says it
                            problems.append(DecodeProblem(at, stream.index, f"{name}: {message.strip()}"))
                    seen_logs = len(logs)
                    if len(problems) >= max_errors:
                        break
        finally:
            av.logging.set_level(previous_level)
    frame_duration = 1 / float(stream.average_rate) if stream.average_rate else 0.0
    covered = (last_time - (first_time or 0.0) + frame_duration) if frames else 0.0
    return ValidationResult(not problems, frames, problems[:max_errors], covered)


def first_video_frames(
    data: bytes, source: Source, count: int, box: tuple[int, int] | None, spec: EncodeSpec, *, limits: Limits
) -> tuple[list[tuple[float, float, Encoded]], int]:
    """The first ``count`` frames (time, duration, encoded) and the frame total the container states."""
    found: list[tuple[float, float, Encoded]] = []
    with open_container(data, source) as container:
        stream = _video_stream(container, source, limits)
        total = int(stream.frames or 0)
        frame_duration = 1 / float(stream.average_rate) if stream.average_rate else 0.0
        fmt = output_format(spec, "JPEG")
        for frame in _decode(container, stream, source, limits):
            image: Image.Image = frame.to_image()
            if box is not None:
                plan = plan_fit(image.size, box, "contain", allow_upscale=False)
                image = image.resize(plan.resize, Image.Resampling.LANCZOS, reducing_gap=2.0)
            found.append((float(frame.time or 0.0), frame_duration, encode(image, spec, fmt)))
            if len(found) >= count:
                break
    return found, total

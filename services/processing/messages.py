"""Proto <-> domain conversions for the processing servicer: enums, request fields (checked, with the
field named when wrong) and response messages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from mediasuite.common.v1 import exif_pb2, media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from services.processing.engine.encode import EncodeSpec
from services.processing.engine.exif import ExifData
from services.processing.engine.probe import ImageInfo
from services.processing.processor import Delivered, MediaSpec, Served
from services.runtime.errors import InvalidArgument

__all__ = [
    "FITS",
    "FORMATS",
    "GRAVITIES",
    "duration",
    "encode_spec",
    "image_info",
    "media_spec",
    "operation_info",
    "output",
    "output_mode",
    "size_of",
]

FORMATS = {
    pb.IMAGE_FORMAT_JPEG: "JPEG",
    pb.IMAGE_FORMAT_PNG: "PNG",
    pb.IMAGE_FORMAT_WEBP: "WEBP",
    pb.IMAGE_FORMAT_TIFF: "TIFF",
    pb.IMAGE_FORMAT_AVIF: "AVIF",
    pb.IMAGE_FORMAT_GIF: "GIF",
}
FORMAT_ENUMS = {name: number for number, name in FORMATS.items()}
FITS = {
    pb.FIT_MODE_UNSPECIFIED: "contain",
    pb.FIT_MODE_CONTAIN: "contain",
    pb.FIT_MODE_COVER: "cover",
    pb.FIT_MODE_FILL: "fill",
}
GRAVITIES = {
    pb.GRAVITY_UNSPECIFIED: "center",
    pb.GRAVITY_CENTER: "center",
    pb.GRAVITY_NORTH: "north",
    pb.GRAVITY_NORTH_EAST: "north_east",
    pb.GRAVITY_EAST: "east",
    pb.GRAVITY_SOUTH_EAST: "south_east",
    pb.GRAVITY_SOUTH: "south",
    pb.GRAVITY_SOUTH_WEST: "south_west",
    pb.GRAVITY_WEST: "west",
    pb.GRAVITY_NORTH_WEST: "north_west",
    pb.GRAVITY_ENTROPY: "entropy",
    pb.GRAVITY_ATTENTION: "attention",
}
_METADATA = {
    pb.METADATA_POLICY_UNSPECIFIED: "strip",
    pb.METADATA_POLICY_STRIP: "strip",
    pb.METADATA_POLICY_KEEP_COPYRIGHT: "keep_copyright",
    pb.METADATA_POLICY_KEEP_ALL: "keep_all",
}
_MODES = {
    media_pb2.OUTPUT_MODE_UNSPECIFIED: "auto",
    media_pb2.OUTPUT_MODE_INLINE: "inline",
    media_pb2.OUTPUT_MODE_STORE: "store",
}


def enum_value(table: Mapping[Any, str], value: int, field: str) -> str:
    """The domain name of an enum value; INVALID_ARGUMENT naming the field for an unknown one."""
    try:
        return table[value]
    except KeyError:
        raise InvalidArgument(f"{field} has an unknown value {value}", field=field) from None


def media_spec(ref: media_pb2.MediaRef, field: str = "media") -> MediaSpec:
    """A media reference; exactly one of path and inline must be set."""
    which = ref.WhichOneof("source")
    if which == "path":
        return MediaSpec(path=ref.path, field=field)
    if which == "inline":
        return MediaSpec(inline=ref.inline, field=field)
    raise InvalidArgument(f"{field} must set path (under the media root) or inline bytes", field=field)


def encode_spec(options: pb.EncodeOptions, field: str = "encode") -> EncodeSpec:
    """Encoding options, checked."""
    if not 0 <= options.quality <= 100:
        raise InvalidArgument(
            f"{field}.quality must be 0-100 (0: the format's default)", field=f"{field}.quality"
        )
    fmt = (
        ""
        if options.format == pb.IMAGE_FORMAT_UNSPECIFIED
        else enum_value(FORMATS, options.format, f"{field}.format")
    )
    return EncodeSpec(
        format=fmt,
        quality=options.quality,
        progressive=options.progressive,
        lossless=options.lossless,
        metadata=enum_value(_METADATA, options.metadata, f"{field}.metadata"),
    )


def output_mode(options: pb.EncodeOptions, field: str = "encode") -> str:
    """inline, store or auto."""
    return enum_value(_MODES, options.output_mode, f"{field}.output_mode")


def size_of(size: pb.Size, field: str) -> tuple[int, int]:
    """A box; negative sides are refused."""
    if size.width < 0 or size.height < 0:
        raise InvalidArgument(f"{field} must not be negative (got {size.width}x{size.height})", field=field)
    return size.width, size.height


def duration(seconds: float) -> duration_pb2.Duration:
    """Seconds as a Duration."""
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def operation_info(served: Served) -> pb.OperationInfo:
    """How a call was served."""
    return pb.OperationInfo(
        cached=served.cached, elapsed=duration(served.elapsed_s), engine_version=served.engine_version
    )


def output(delivered: Delivered) -> media_pb2.Output:
    """A delivered output as the shared Output message."""
    message = media_pb2.Output(
        content_key=delivered.content_key,
        media_type=delivered.media_type,
        size_bytes=delivered.size_bytes,
        width=delivered.width,
        height=delivered.height,
    )
    if delivered.stored_path:
        message.stored_path = delivered.stored_path
    else:
        message.inline = delivered.data
    return message


def _timestamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(moment.astimezone(dt.UTC).replace(tzinfo=None))
    return value


def exif_summary(exif: ExifData) -> exif_pb2.ExifSummary:
    """Typed EXIF as the shared ExifSummary."""
    message = exif_pb2.ExifSummary(
        make=exif.make,
        model=exif.model,
        lens=exif.lens,
        exposure_time_s=exif.exposure_time_s,
        f_number=exif.f_number,
        iso=exif.iso,
        focal_length_mm=exif.focal_length_mm,
        orientation=exif.orientation,
        copyright=exif.copyright,
        artist=exif.artist,
        software=exif.software,
    )
    if exif.taken_at is not None:
        message.taken_at.CopyFrom(_timestamp(exif.taken_at))
    if exif.gps is not None:
        message.gps.CopyFrom(
            exif_pb2.GpsPosition(
                latitude=exif.gps.latitude, longitude=exif.gps.longitude, altitude_m=exif.gps.altitude_m
            )
        )
    return message


def image_info(info: ImageInfo, content_hash: str, mtime_ns: int) -> pb.MediaInfo:
    """What Probe found, as MediaInfo (content_hash empty when not asked for)."""
    message = pb.MediaInfo(
        format=info.format,
        media_type=info.media_type,
        width=info.width,
        height=info.height,
        mode=info.mode,
        bit_depth=info.bit_depth,
        frame_count=info.frame_count,
        animated=info.animated,
        has_icc_profile=info.has_icc_profile,
        icc_description=info.icc_description,
        size_bytes=info.size_bytes,
        content_hash=content_hash,
        perceptual_hash=info.perceptual_hash,
        exif=exif_summary(info.exif),
        raw_exif=info.raw_exif,
        display_width=info.display_width,
        display_height=info.display_height,
    )
    if mtime_ns:
        message.modified_at.FromNanoseconds(mtime_ns)
    return message

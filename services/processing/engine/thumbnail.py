"""Thumbnails, fast: shrink while decoding (JPEG DCT scaling via draft), reduce() by whole factors, one
final Lanczos resample, then sRGB and EXIF orientation on the small image, never the full-size one."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from services.processing.engine.decode import decoding, load_image, open_image
from services.processing.engine.encode import Encoded, EncodeSpec, encode, output_format
from services.processing.engine.geometry import crop_position, plan_fit
from services.processing.engine.pixels import (
    apply_orientation,
    displayed_size,
    orientation_of,
    to_srgb,
    workable,
)
from services.processing.limits import Limits
from services.processing.media import Source

__all__ = ["ThumbnailSpec", "decode_upright", "make_thumbnail", "shrink_upright"]

# resize() first reduces by a whole factor while the image stays this many times the target
REDUCING_GAP = 2.0


@dataclass(frozen=True)
class ThumbnailSpec:
    """A thumbnail request: box (0 on one side follows the ratio), fit, gravity, encoding."""

    width: int
    height: int
    fit: str = "contain"
    gravity: str = "center"
    allow_upscale: bool = False
    encode: EncodeSpec = field(default_factory=EncodeSpec)


def shrink_upright(
    image: Image.Image,
    source: Source,
    box: tuple[int, int],
    fit: str = "contain",
    allow_upscale: bool = False,
) -> tuple[Image.Image, tuple[int, int] | None]:
    """Decode ``image`` (opened, not loaded) into ``box``, sRGB and upright; returns it and the cover crop."""
    orientation = orientation_of(image)
    icc = image.info.get("icc_profile")
    plan = plan_fit(displayed_size(image.size, orientation), box, fit, allow_upscale)
    stored_target = displayed_size(plan.resize, orientation)
    if image.format in ("JPEG", "MPO"):
        with decoding(source):
            image.draft(image.mode, stored_target)  # DCT scaling: decode at 1/2, 1/4 or 1/8 when it fits
    image = workable(load_image(image, source))
    if image.size != stored_target:
        with decoding(source):
            image = image.resize(stored_target, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    image = to_srgb(image, icc)
    return apply_orientation(image, orientation), plan.crop


def make_thumbnail(data: bytes, source: Source, spec: ThumbnailSpec, limits: Limits) -> Encoded:
    """The thumbnail of ``data`` as ``spec`` asks (the first frame of an animation)."""
    limits.check_output(spec.width, spec.height, "size")
    image = open_image(data, source, limits)
    source_format = image.format or ""
    exif = image.getexif() if spec.encode.metadata != "strip" else None
    fmt = output_format(spec.encode, source_format)
    small, crop = shrink_upright(image, source, (spec.width, spec.height), spec.fit, spec.allow_upscale)
    if crop is not None:
        small = small.crop(crop_position(small, crop, spec.gravity).pil)
    return encode(small, spec.encode, fmt, exif)


def decode_upright(data: bytes, source: Source, limits: Limits) -> tuple[Image.Image, str, Image.Exif | None]:
    """The whole image decoded, sRGB and upright, with its source format and EXIF (None if unreadable)."""
    image = open_image(data, source, limits)
    source_format = image.format or ""
    try:
        exif: Image.Exif | None = image.getexif()
    except Exception:  # unreadable EXIF: the pixels still count
        exif = None
    size = displayed_size(image.size, orientation_of(image))
    upright, _ = shrink_upright(image, source, size)
    return upright, source_format, exif

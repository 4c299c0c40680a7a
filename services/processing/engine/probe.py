"""Probe: what an image is, read from its header (no pixel decoding), plus the hashes asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO

from PIL import Image, ImageCms

from services.processing.engine.decode import decoding, open_image
from services.processing.engine.encode import MEDIA_TYPES
from services.processing.engine.exif import ExifData, raw_exif, read_exif
from services.processing.engine.pixels import displayed_size, orientation_of
from services.processing.engine.thumbnail import shrink_upright
from services.processing.limits import Limits
from services.processing.media import Source

__all__ = ["ImageInfo", "ProbeOptions", "dhash", "probe_image"]

_BITS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}


@dataclass(frozen=True)
class ProbeOptions:
    """What to compute beyond the header."""

    perceptual_hash: bool = False
    raw_exif: bool = False


@dataclass(frozen=True)
class ImageInfo:
    """What Probe reports of an image."""

    format: str
    media_type: str
    width: int
    height: int
    mode: str
    bit_depth: int
    frame_count: int
    animated: bool
    has_icc_profile: bool
    icc_description: str
    size_bytes: int
    display_width: int
    display_height: int
    exif: ExifData
    perceptual_hash: str = ""
    raw_exif: dict[str, str] = field(default_factory=dict)


def _bit_depth(image: Image.Image, data: bytes) -> int:
    if image.format == "PNG" and data[12:16] == b"IHDR":
        return data[24]  # the IHDR bit depth: Pillow shows 16-bit RGB PNGs as 8-bit RGB
    return _BITS.get(image.mode, 8)


def _icc_description(icc: bytes | None) -> str:
    if not icc:
        return ""
    try:
        return (ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(BytesIO(icc))) or "").strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return "(unreadable profile)"


def dhash(image: Image.Image, source: Source) -> str:
    """64-bit difference hash (hex) of the upright image: 9x8 greyscale, each pixel against its right."""
    small, _ = shrink_upright(image, source, (64, 64), "fill", allow_upscale=True)
    grey = small.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    pixels = grey.tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (pixels[row * 9 + col] > pixels[row * 9 + col + 1])
    return f"{bits:016x}"


def probe_image(data: bytes, source: Source, options: ProbeOptions, limits: Limits) -> ImageInfo:
    """Header facts, typed EXIF and (when asked) the perceptual hash and every EXIF tag."""
    image = open_image(data, source, limits)
    with decoding(source):
        exif_block = image.getexif()
        exif = read_exif(exif_block)
        raw = raw_exif(exif_block) if options.raw_exif else {}
        frames = int(getattr(image, "n_frames", 1) or 1)
    limits.check_frames(frames, f"{source.label} with {frames} frames")
    orientation = orientation_of(image)
    width, height = image.size
    display = displayed_size(image.size, orientation)
    icc = image.info.get("icc_profile")
    fmt = image.format or ""
    info = ImageInfo(
        format=fmt,
        media_type=MEDIA_TYPES.get(fmt, Image.MIME.get(fmt, "application/octet-stream")),
        width=width,
        height=height,
        mode=image.mode,
        bit_depth=_bit_depth(image, data),
        frame_count=frames,
        animated=bool(getattr(image, "is_animated", False)) and frames > 1,
        has_icc_profile=bool(icc),
        icc_description=_icc_description(icc),
        size_bytes=len(data),
        display_width=display[0],
        display_height=display[1],
        exif=exif,
        raw_exif=raw,
    )
    if options.perceptual_hash:
        fresh = open_image(data, source, limits)
        info = ImageInfo(**{**info.__dict__, "perceptual_hash": dhash(fresh, source)})
    return info

"""Encoding an output image: format, quality, progressive JPEG, lossless WebP/AVIF, and which metadata
survives (none by default; copyright and artist; or everything with the orientation reset)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, features

from services.processing.engine.pixels import ORIENTATION_TAG, flatten, srgb_profile_bytes
from services.runtime.errors import InvalidArgument

__all__ = [
    "MEDIA_TYPES",
    "EncodeSpec",
    "Encoded",
    "encode",
    "output_format",
    "writable_formats",
]

MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tiff", "AVIF": "avif", "GIF": "gif"}
DEFAULT_QUALITY = {"JPEG": 85, "WEBP": 80, "AVIF": 60}
_COPYRIGHT_TAGS = (0x8298, 0x013B)  # Copyright, Artist


@functools.cache
def writable_formats() -> tuple[str, ...]:
    """Formats this installation encodes (AVIF only when Pillow was built with it)."""
    found = ["JPEG", "PNG", "WEBP", "TIFF", "GIF"]
    if features.check("avif"):
        found.insert(4, "AVIF")
    return tuple(found)


@dataclass(frozen=True)
class EncodeSpec:
    """How to encode: format ("" keeps the source's when writable, else JPEG), quality (0 = default)."""

    format: str = ""
    quality: int = 0
    progressive: bool = False
    lossless: bool = False
    metadata: str = "strip"  # strip | keep_copyright | keep_all


@dataclass(frozen=True)
class Encoded:
    """An encoded image."""

    data: bytes
    format: str
    width: int
    height: int

    @property
    def media_type(self) -> str:
        """The output's media type."""
        return MEDIA_TYPES[self.format]

    @property
    def extension(self) -> str:
        """File extension for the derived store."""
        return EXTENSIONS.get(self.format, "bin")


def output_format(spec: EncodeSpec, source_format: str, field: str = "encode.format") -> str:
    """The format to write: the asked one (checked), else the source's when writable, else JPEG."""
    if spec.format:
        if spec.format not in writable_formats():
            raise InvalidArgument(
                f"{field} {spec.format} cannot be written here; writable: {', '.join(writable_formats())}",
                field=field,
            )
        return spec.format
    source = "JPEG" if source_format == "MPO" else source_format
    return source if source in writable_formats() and source != "GIF" else "JPEG"


def _metadata(spec: EncodeSpec, exif: Image.Exif | None) -> dict[str, object]:
    if spec.metadata == "strip" or exif is None:
        return {}
    kept = Image.Exif()
    if spec.metadata == "keep_copyright":
        for tag in _COPYRIGHT_TAGS:
            if tag in exif:
                kept[tag] = exif[tag]
        return {"exif": kept.tobytes()} if len(kept) else {}
    exif[ORIENTATION_TAG] = 1
    return {"exif": exif.tobytes(), "icc_profile": srgb_profile_bytes()}


def encode(
    image: Image.Image,
    spec: EncodeSpec,
    fmt: str,
    exif: Image.Exif | None = None,
    *,
    optimize: bool = False,
) -> Encoded:
    """Encode ``image`` (sRGB, upright) as ``fmt`` with the spec's quality and metadata policy."""
    image.info = {}  # nothing of the source's metadata leaks unless the policy keeps it
    options: dict[str, object] = dict(_metadata(spec, exif))
    quality = spec.quality or DEFAULT_QUALITY.get(fmt, 0)
    if fmt == "JPEG":
        image = flatten(image)
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        options.update(quality=quality, progressive=spec.progressive, optimize=optimize)
    elif fmt == "WEBP":
        image = (
            image if image.mode in ("RGB", "RGBA") else image.convert("RGBA" if "A" in image.mode else "RGB")
        )
        options.update(quality=quality, lossless=spec.lossless, method=6 if optimize else 4)
    elif fmt == "AVIF":
        image = (
            image if image.mode in ("RGB", "RGBA") else image.convert("RGBA" if "A" in image.mode else "RGB")
        )
        options.update(quality=100 if spec.lossless else quality, speed=8)
    elif fmt == "PNG":
        options.update(compress_level=9 if optimize else 6, optimize=optimize)
    elif fmt == "TIFF":
        options.update(compression="tiff_adobe_deflate")
    elif fmt == "GIF":
        options.pop("icc_profile", None)
    buffer = BytesIO()
    image.save(buffer, format=fmt, **options)
    return Encoded(buffer.getvalue(), fmt, image.width, image.height)

"""Opening untrusted image bytes: only known formats, the pixel limit checked from the header before any
decoding, and every decoder failure turned into INVALID_ARGUMENT that says what is wrong."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO

from PIL import Image, ImageFile, UnidentifiedImageError

from services.processing.limits import Limits
from services.processing.media import Source
from services.runtime.errors import InvalidArgument

__all__ = ["READ_FORMATS", "decoding", "describe_bytes", "load_image", "open_image"]

# Formats we decode (JPEG includes multi-picture MPO files). Everything else (EPS runs Ghostscript,
# and dozens of rarely used plugins) is refused: a smaller attack surface, and every one is tested.
READ_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "GIF", "BMP", "AVIF")

Image.init()  # register every plugin, so the formats above can be named

# We check pixels ourselves, from the header, with the configured limit and a clear error.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, zlib.error, KeyError)


_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"%PDF", "a PDF document"),
    (0, b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (8, b"heic", "a HEIF/HEIC image (not supported)"),
    (8, b"mif1", "a HEIF/HEIC image (not supported)"),
    (4, b"ftyp", "an MP4/QuickTime video (use the video operations)"),
    (0, b"\x1aE\xdf\xa3", "a Matroska/WebM video (use the video operations)"),
    (8, b"AVI ", "an AVI video (use the video operations)"),
    (8, b"WAVE", "a WAVE audio file"),
    (0, b"ID3", "an audio file"),
    (0, b"OggS", "an audio file"),
    (0, b"fLaC", "an audio file"),
    (0, b"\xff\xd8", "a JPEG whose header is damaged"),
    (0, b"\x89PNG", "a PNG whose header is damaged"),
    (0, b"GIF8", "a GIF whose header is damaged"),
)


def describe_bytes(data: bytes) -> str:
    """What the bytes look like, for an error message ("a PDF document", "text", ...)."""
    head = data[:64]
    for offset, magic, meaning in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return meaning
    if head.lstrip().startswith(b"<"):
        return "HTML or XML text"
    unknown = f"unrecognised bytes starting with {head[:8].hex()}"
    try:
        text = data[:512].decode("utf-8")
    except UnicodeDecodeError:
        return unknown
    return "text" if all(ch.isprintable() or ch in "\r\n\t" for ch in text) else unknown


def open_image(data: bytes, source: Source, limits: Limits) -> Image.Image:
    """Open (header only, nothing decoded yet) and check the pixel limit from the header."""
    if not data:
        raise InvalidArgument(f"{source.label} is empty (0 bytes)", field=source.field)
    try:
        image = Image.open(BytesIO(data), formats=READ_FORMATS)
    except UnidentifiedImageError:
        raise InvalidArgument(
            f"{source.label} is not an image this service reads ({', '.join(READ_FORMATS)}): "
            f"the bytes look like {describe_bytes(data)}",
            field=source.field,
            reason="UNSUPPORTED_MEDIA",
        ) from None
    except _DECODER_ERRORS as error:
        raise InvalidArgument(
            f"{source.label} has a corrupt header ({describe_bytes(data)}): {error}",
            field=source.field,
            reason="CORRUPT_MEDIA",
        ) from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidArgument(f"{source.label} declares an empty size {width}x{height}", field=source.field)
    limits.check_pixels(width, height)
    return image


@contextmanager
def decoding(source: Source) -> Iterator[None]:
    """Turn decoder failures inside the block into INVALID_ARGUMENT naming what went wrong."""
    try:
        yield
    except InvalidArgument:
        raise
    except _DECODER_ERRORS as error:
        text = str(error)
        if "truncated" in text or isinstance(error, EOFError) or "broken data stream" in text:
            message = f"{source.label} is truncated: the file ends before its image data does ({text})"
            reason = "TRUNCATED_MEDIA"
        else:
            message = f"{source.label} is corrupt: the decoder failed ({text})"
            reason = "CORRUPT_MEDIA"
        raise InvalidArgument(message, field=source.field, reason=reason) from None


def load_image(image: Image.Image, source: Source) -> Image.Image:
    """Decode the pixels (after any draft), with decoder failures reported as INVALID_ARGUMENT."""
    with decoding(source):
        image.load()
    return image

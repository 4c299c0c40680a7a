"""Pixel housekeeping shared by every image operation: EXIF orientation, modes we can resample and
encode, and conversion to sRGB from an embedded ICC profile (or from CMYK)."""

from __future__ import annotations

import functools
import hashlib
from io import BytesIO
from typing import Any

from PIL import Image, ImageCms

__all__ = [
    "ORIENTATION_TAG",
    "apply_orientation",
    "displayed_size",
    "flatten",
    "orientation_of",
    "srgb_profile_bytes",
    "to_srgb",
    "workable",
]

ORIENTATION_TAG = 0x0112

# EXIF orientation -> the transposition that shows the image upright.
_TRANSPOSE: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orientation_of(image: Image.Image) -> int:
    """The EXIF orientation 1-8 (1 when absent or invalid). Reads the header only."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # malformed EXIF must not stop the operation: treat as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def displayed_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """Width and height as shown, after the orientation is applied."""
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """The image turned upright (cheap on a small image: call it after shrinking)."""
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def workable(image: Image.Image) -> Image.Image:  # noqa: PLR0911  # one return per mode family
    """A mode resampling and sRGB conversion handle: L, LA, RGB, RGBA or CMYK."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return image
    if mode == "P":
        has_alpha = "transparency" in image.info or (
            image.palette is not None and image.palette.mode == "RGBA"
        )
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode == "PA":
        return image.convert("RGBA")
    if mode.startswith("I;16") or mode in ("I", "F"):
        # 16-bit (or 32-bit) greyscale: scale to 8 bits rather than clip.
        scale = 1 / 256 if mode.startswith("I;16") or _is_16bit(image) else 1.0
        return image.convert("I").point(lambda value: value * scale).convert("L")
    if mode == "1":
        return image.convert("L")
    if mode == "La":
        return image.convert("LA")
    if mode == "RGBa":
        return image.convert("RGBA")
    return image.convert("RGBA" if "A" in mode else "RGB")


def _is_16bit(image: Image.Image) -> bool:
    extrema: Any = image.getextrema()
    low, high = extrema
    return bool(high > 255 and high <= 65535 and low >= 0)


def flatten(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Drop alpha by compositing on a background (for formats without alpha)."""
    if image.mode in ("RGBA", "LA"):
        base = Image.new("RGB", image.size, background)
        base.paste(image.convert("RGBA"), mask=image.getchannel("A"))
        return base
    return image


@functools.cache
def srgb_profile_bytes() -> bytes:
    """The sRGB ICC profile (embedded when metadata is kept)."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return bytes(profile.tobytes())


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.lru_cache(maxsize=32)
def _transform(icc_digest: str, icc: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform | None:
    """A cached transform from the embedded profile to sRGB; None when the profile is sRGB or unusable."""
    try:
        source = ImageCms.ImageCmsProfile(BytesIO(icc))
        description = (ImageCms.getProfileDescription(source) or "").lower()
        if "srgb" in description and in_mode != "CMYK":
            return None
        return ImageCms.buildTransform(source, _srgb_profile(), in_mode, out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken profile is ignored: the pixels are taken as sRGB


def to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB/RGBA/L/LA pixels in sRGB: the embedded profile applied, CMYK converted."""
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
    base = image.convert("RGB") if image.mode == "RGBA" else image
    base = base.convert("L") if base.mode == "LA" else base
    transform = None
    if icc and base.mode in ("RGB", "CMYK"):
        digest = hashlib.sha256(icc).hexdigest()
        transform = _transform(digest, icc, base.mode, "RGB")
    if transform is not None:
        try:
            base = ImageCms.applyTransform(base, transform) or base
        except (ImageCms.PyCMSError, ValueError):
            base = base.convert("RGB")
    elif base.mode == "CMYK":
        base = base.convert("RGB")
    if alpha is not None:
        base = base.convert("RGBA" if base.mode == "RGB" else "LA")
        base.putalpha(alpha)
    base.info.pop("icc_profile", None)
    return base

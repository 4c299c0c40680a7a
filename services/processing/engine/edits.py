"""Edits of a whole image: Enhance (auto-contrast, equalize, sharpen, denoise, auto-orient), Crop (a
rectangle, or an aspect ratio placed by gravity or content) and Watermark (text or image, placed or
tiled, with opacity)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from services.processing.engine.decode import open_image
from services.processing.engine.encode import Encoded, EncodeSpec, encode, output_format
from services.processing.engine.geometry import GRAVITIES, Box, crop_position
from services.processing.engine.pixels import orientation_of
from services.processing.engine.thumbnail import decode_upright, shrink_upright
from services.processing.limits import Limits
from services.processing.media import Source
from services.runtime.errors import InvalidArgument

__all__ = [
    "CropSpec",
    "WatermarkSpec",
    "crop_image",
    "enhance_image",
    "watermark_image",
]

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _enhance_step(image: Image.Image, step: str, strength: float) -> Image.Image:
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
    base = image.convert("RGB" if image.mode == "RGBA" else "L") if alpha is not None else image
    if step == "auto_contrast":
        base = ImageOps.autocontrast(base, cutoff=1)
    elif step == "equalize":
        if base.mode == "RGB":
            y, cb, cr = base.convert("YCbCr").split()
            base = Image.merge("YCbCr", (ImageOps.equalize(y), cb, cr)).convert("RGB")
        else:
            base = ImageOps.equalize(base)
    elif step == "sharpen":
        base = base.filter(ImageFilter.UnsharpMask(radius=2, percent=int(50 + 200 * strength), threshold=2))
    elif step == "denoise":
        base = base.filter(ImageFilter.MedianFilter(3 if strength <= 0.6 else 5))
    if alpha is not None:
        base.putalpha(alpha)
    return base


def enhance_image(
    data: bytes, source: Source, steps: list[str], strength: float, spec: EncodeSpec, *, limits: Limits
) -> tuple[Encoded, list[str]]:
    """Apply ``steps`` in order; returns the image and the steps applied (auto-orient only when needed).

    Pixels are always shown upright: auto-orient is reported as applied when the file was not.
    """
    opened = open_image(data, source, limits)
    rotated = orientation_of(opened) != 1
    upright, source_format, exif = decode_upright(data, source, limits)
    applied: list[str] = []
    for step in steps:
        if step == "auto_orient":
            if rotated and "auto_orient" not in applied:
                applied.append(step)
            continue
        upright = _enhance_step(upright, step, strength)
        applied.append(step)
    return encode(upright, spec, output_format(spec, source_format), exif), applied


@dataclass(frozen=True)
class CropSpec:
    """A rectangle (x, y, width, height in upright pixels) or an aspect ratio with gravity."""

    rect: tuple[int, int, int, int] | None = None
    ratio: tuple[int, int] | None = None
    gravity: str = "center"


def crop_image(
    data: bytes, source: Source, spec: CropSpec, encode_spec: EncodeSpec, limits: Limits
) -> tuple[Encoded, Box]:
    """Cut the region from the upright image."""
    upright, source_format, exif = decode_upright(data, source, limits)
    if spec.rect is not None:
        x, y, w, h = spec.rect
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > upright.width or y + h > upright.height:
            raise InvalidArgument(
                f"rect {x},{y} {w}x{h} does not lie inside the upright image "
                f"({upright.width}x{upright.height})",
                field="rect",
            )
        box = Box(x, y, w, h)
    else:
        assert spec.ratio is not None  # noqa: S101 (narrows a type: an invariant of the code above, not a check of input)
        rw, rh = spec.ratio
        if rw <= 0 or rh <= 0:
            raise InvalidArgument(f"aspect ratio {rw}:{rh} needs two positive numbers", field="aspect")
        width = min(upright.width, round(upright.height * rw / rh))
        height = min(upright.height, round(upright.width * rh / rw))
        box = crop_position(upright, (max(1, width), max(1, height)), spec.gravity)
    cropped = upright.crop(box.pil)
    return encode(cropped, encode_spec, output_format(encode_spec, source_format), exif), box


@dataclass(frozen=True)
class WatermarkSpec:
    """The mark and how it is laid on the image."""

    text: str = ""
    size_ratio: float = 0.05
    color: str = "#ffffff"
    position: str = "south_east"
    margin_ratio: float = 0.02
    opacity: float = 0.5
    tile: bool = False
    overlay_ratio: float = 0.2


def _text_mark(text: str, height: int, color: str, opacity: float) -> Image.Image:
    font = ImageFont.load_default(size=max(6, height))
    left, top, right, bottom = font.getbbox(text)
    mark = Image.new("RGBA", (max(1, int(right - left)), max(1, int(bottom - top))), (0, 0, 0, 0))
    rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    ImageDraw.Draw(mark).text((-left, -top), text, font=font, fill=(*rgb, round(255 * opacity)))
    return mark


def _image_mark(data: bytes, source: Source, width: int, opacity: float, limits: Limits) -> Image.Image:
    overlay = open_image(data, source, limits)
    small, _ = shrink_upright(overlay, source, (max(1, width), 0), allow_upscale=True)
    small = small.convert("RGBA")
    alpha = small.getchannel("A").point(lambda value: round(value * opacity))
    small.putalpha(alpha)
    return small


def _place(layer: Image.Image, mark: Image.Image, x: int, y: int) -> None:
    """Composite ``mark`` onto ``layer`` at (x, y), clipping what falls outside."""
    left, top = max(0, -x), max(0, -y)
    if left >= mark.width or top >= mark.height:
        return
    visible = mark.crop((left, top, mark.width, mark.height)) if left or top else mark
    layer.alpha_composite(visible, (max(0, x), max(0, y)))


def watermark_image(
    data: bytes,
    source: Source,
    spec: WatermarkSpec,
    encode_spec: EncodeSpec,
    *,
    limits: Limits,
    overlay: tuple[bytes, Source] | None = None,
) -> Encoded:
    """Lay a text or image mark on the upright image."""
    if not overlay and not (1 <= len(spec.text) <= 200):
        raise InvalidArgument("text.text must have 1 to 200 characters", field="text.text")
    if not _COLOR.match(spec.color):
        raise InvalidArgument(f"text.color {spec.color!r} must look like #rrggbb", field="text.color")
    upright, source_format, exif = decode_upright(data, source, limits)
    short = min(upright.size)
    if overlay is not None:
        mark = _image_mark(
            overlay[0], overlay[1], round(upright.width * spec.overlay_ratio), spec.opacity, limits
        )
    else:
        mark = _text_mark(spec.text, round(short * spec.size_ratio), spec.color, spec.opacity)
    layer = Image.new("RGBA", upright.size, (0, 0, 0, 0))
    margin = round(short * spec.margin_ratio)
    if spec.tile:
        step_x, step_y = mark.width + max(margin, mark.height), mark.height * 3
        for y in range(margin, upright.height, max(1, step_y)):
            offset = (y // max(1, step_y)) % 2 * step_x // 2
            for x in range(margin - offset, upright.width, max(1, step_x)):
                _place(layer, mark, x, y)
    else:
        fx, fy = GRAVITIES.get(spec.position, (1.0, 1.0))
        free_x = max(0, upright.width - mark.width - 2 * margin)
        free_y = max(0, upright.height - mark.height - 2 * margin)
        _place(layer, mark, margin + round(free_x * fx), margin + round(free_y * fy))
    base = upright.convert("RGBA")
    marked = Image.alpha_composite(base, layer)
    if "A" not in upright.mode:
        marked = marked.convert("RGB")
    return encode(marked, encode_spec, output_format(encode_spec, source_format), exif)

"""Sizes and placements: fitting a box (contain, cover, fill), gravity, and content-aware crops
(entropy: keep the busiest region; attention: keep edges, saturated colour and skin tones)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from services.runtime.errors import InvalidArgument

__all__ = ["GRAVITIES", "Box", "FitPlan", "crop_position", "plan_fit"]

# gravity -> (fraction across, fraction down) of the free space left of / above the crop
GRAVITIES: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "north": (0.5, 0.0),
    "north_east": (1.0, 0.0),
    "east": (1.0, 0.5),
    "south_east": (1.0, 1.0),
    "south": (0.5, 1.0),
    "south_west": (0.0, 1.0),
    "west": (0.0, 0.5),
    "north_west": (0.0, 0.0),
}
SMART = ("entropy", "attention")


@dataclass(frozen=True)
class Box:
    """A rectangle: left, top, width, height."""

    x: int
    y: int
    width: int
    height: int

    @property
    def pil(self) -> tuple[int, int, int, int]:
        """As Pillow's (left, upper, right, lower)."""
        return (self.x, self.y, self.x + self.width, self.y + self.height)


@dataclass(frozen=True)
class FitPlan:
    """What a fit needs: the size to resample the (upright) image to, then the crop size (cover)."""

    resize: tuple[int, int]
    crop: tuple[int, int] | None


def plan_fit(
    source: tuple[int, int], box: tuple[int, int], fit: str, allow_upscale: bool, field: str = "size"
) -> FitPlan:
    """Plan contain/cover/fill of an upright ``source`` size into ``box`` (a 0 side follows the ratio)."""
    sw, sh = source
    bw, bh = box
    if bw < 0 or bh < 0 or (bw == 0 and bh == 0):
        raise InvalidArgument(f"{field} needs a positive width or height (got {bw}x{bh})", field=field)
    if fit != "contain" and (bw == 0 or bh == 0):
        raise InvalidArgument(f"{field} needs both width and height with fit {fit}", field=field)
    if bw == 0:
        bw = max(1, round(sw * bh / sh))
    if bh == 0:
        bh = max(1, round(sh * bw / sw))
    if fit == "fill":
        if not allow_upscale:
            bw, bh = min(bw, sw), min(bh, sh)
        return FitPlan((bw, bh), None)
    if fit == "cover":
        scale = max(bw / sw, bh / sh)
        if not allow_upscale:
            scale = min(scale, 1.0)
        width, height = max(1, math.ceil(sw * scale - 1e-9)), max(1, math.ceil(sh * scale - 1e-9))
        return FitPlan((width, height), (min(bw, width), min(bh, height)))
    scale = min(bw / sw, bh / sh)
    if not allow_upscale:
        scale = min(scale, 1.0)
    return FitPlan((max(1, round(sw * scale)), max(1, round(sh * scale))), None)


def crop_position(image: Image.Image, size: tuple[int, int], gravity: str) -> Box:
    """Where a crop of ``size`` goes in ``image``: by gravity, or by content for entropy/attention."""
    width, height = size
    free_x, free_y = image.width - width, image.height - height
    if free_x <= 0 and free_y <= 0:
        return Box(0, 0, image.width, image.height)
    if gravity == "entropy":
        return _entropy_crop(image, width, height)
    if gravity == "attention":
        return _attention_crop(image, width, height)
    fx, fy = GRAVITIES.get(gravity, (0.5, 0.5))
    return Box(round(max(free_x, 0) * fx), round(max(free_y, 0) * fy), width, height)


def _entropy_crop(image: Image.Image, width: int, height: int) -> Box:
    """Trim the side whose edge strip carries less information, repeatedly (as libvips does)."""
    grey = image.convert("L")
    left, top, right, bottom = 0, 0, grey.width, grey.height
    while right - left > width:
        step = max(1, min(right - left - width, math.ceil((right - left) / 16)))
        first = grey.crop((left, top, left + step, bottom)).entropy()
        last = grey.crop((right - step, top, right, bottom)).entropy()
        if first < last:
            left += step
        else:
            right -= step
    while bottom - top > height:
        step = max(1, min(bottom - top - height, math.ceil((bottom - top) / 16)))
        first = grey.crop((left, top, right, top + step)).entropy()
        last = grey.crop((left, bottom - step, right, bottom)).entropy()
        if first < last:
            top += step
        else:
            bottom -= step
    return Box(left, top, width, height)


def _attention_map(image: Image.Image) -> np.ndarray:
    """Per-pixel interest: edges, saturation and skin tones, each 0-1."""
    rgb = image.convert("RGB")
    edges = np.asarray(rgb.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float32) / 255.0
    hsv = np.asarray(rgb.convert("HSV"), dtype=np.float32) / 255.0
    saturation = hsv[..., 1] * hsv[..., 2]
    pixels = np.asarray(rgb, dtype=np.int16)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    skin = (
        (r > 95)
        & (g > 40)
        & (b > 20)
        & (r > g)
        & (r > b)
        & (np.abs(r - g) > 15)
        & (r - np.minimum(g, b) > 15)
    ).astype(np.float32)
    score: np.ndarray = edges * 2.0 + saturation + skin * 1.5
    return score


def _attention_crop(image: Image.Image, width: int, height: int) -> Box:
    """The window with the most interest, found on a small copy with an integral image."""
    scale = min(1.0, 256 / max(image.size))
    small = (
        image
        if scale == 1.0
        else image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    )
    score = _attention_map(small)
    win_w = max(1, min(small.width, round(width * scale)))
    win_h = max(1, min(small.height, round(height * scale)))
    integral = np.pad(score.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = (
        integral[win_h:, win_w:]
        - integral[:-win_h, win_w:]
        - integral[win_h:, :-win_w]
        + integral[:-win_h, :-win_w]
    )
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    left = min(max(0, round(int(x) / scale)), image.width - width)
    top = min(max(0, round(int(y) / scale)), image.height - height)
    return Box(max(0, left), max(0, top), min(width, image.width), min(height, image.height))

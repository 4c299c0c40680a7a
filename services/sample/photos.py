"""A deterministic generator of realistic camera JPEGs: the benchmarks' photos and the sample library's.

Each photo is a smooth scene (sky gradient, shapes and text drawn small and upscaled, so edges are
soft as through a lens) with camera-like grain (luminance and weaker chroma noise), saved as a
4:2:0 JPEG at quality 92 with camera EXIF (make, model, lens, time, exposure, and an orientation:
by default a third of the photos are portrait shots stored sideways, orientation 6 or 8). The same
arguments give the same bytes, so every benchmark run measures the same files.

The sample library asks for more: a chosen orientation, another camera, a photo out of focus
(``blur``, a Gaussian radius in pixels of the final image, best with less ``grain``: a low-ISO shot)
or underexposed (``exposure`` < 1 scales the light before the grain is added, as a sensor would).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, TiffImagePlugin

__all__ = ["GENERATOR_VERSION", "Camera", "make_photo"]

GENERATOR_VERSION = 1
_ORIENTATIONS = (1, 6, 1, 8, 1, 1)


@dataclass(frozen=True)
class Camera:
    """What the EXIF says took the photo."""

    make: str = "Benchcam"
    model: str = "BC-12"
    lens: str = "Bench 24-70mm"


_BENCH_CAMERA = Camera()


def _exif(index: int, orientation: int, camera: Camera, software: str) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = camera.make
    exif[0x0110] = camera.model
    exif[0x0131] = software
    exif[0x0112] = orientation
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = f"2024:06:{1 + index % 28:02d} 10:{index % 60:02d}:00"
    sub[0x829A] = TiffImagePlugin.IFDRational(1, 125 + index)
    sub[0x829D] = TiffImagePlugin.IFDRational(40, 10)
    sub[0x8827] = 200 + 100 * (index % 8)
    sub[0x920A] = TiffImagePlugin.IFDRational(50, 1)
    sub[0xA434] = camera.lens
    return exif.tobytes()


def make_photo(
    index: int,
    width: int = 4000,
    height: int = 3000,
    *,
    orientation: int | None = None,
    camera: Camera = _BENCH_CAMERA,
    caption: str = "Benchmark street 42",
    software: str = "bench 1.0",
    blur: float = 0.0,
    exposure: float = 1.0,
    grain: float = 1.0,
) -> bytes:
    """Photo number ``index`` as JPEG bytes (deterministic).

    ``width`` x ``height`` are the stored pixels; ``orientation`` the EXIF tag (default: cycles
    through 1, 6, 1, 8, 1, 1 by index).
    """
    rng = np.random.default_rng(1000 + index)
    small_w, small_h = max(64, width // 4), max(48, height // 4)
    y = np.linspace(0, 1, small_h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, small_w, dtype=np.float32)[None, :]
    zero = np.zeros((small_h, small_w), dtype=np.float32)
    tint = rng.uniform(-30, 30, 3).astype(np.float32)
    sky = np.stack(
        [
            70 + 110 * y + 15 * x + zero + tint[0],
            120 + 70 * y + zero + tint[1],
            210 - 80 * y + 10 * x + zero + tint[2],
        ],
        axis=-1,
    )
    scene = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(scene)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, small_w)), int(rng.integers(small_h // 3, small_h))
        w, h = int(rng.integers(8, small_w // 4)), int(rng.integers(8, small_h // 3))
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
    for row in range(small_h // 2, small_h, 24):
        draw.text((int(rng.integers(0, small_w // 2)), row), caption, fill=(240, 240, 230))
    big_image = scene.resize((width, height), Image.Resampling.BICUBIC)
    if blur > 0:
        big_image = big_image.filter(ImageFilter.GaussianBlur(blur))
    big = np.asarray(big_image, dtype=np.float32)
    if exposure != 1.0:
        big = big * np.float32(exposure)
    big += rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(5.0 * grain)  # luminance
    big += rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(2.0 * grain)  # chroma
    image = Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    if orientation is None:
        orientation = _ORIENTATIONS[index % len(_ORIENTATIONS)]
    image.save(
        buffer,
        format="JPEG",
        quality=92,
        subsampling="4:2:0",
        exif=_exif(index, orientation, camera, software),
    )
    return buffer.getvalue()

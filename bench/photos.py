"""A deterministic generator of realistic camera JPEGs for the processing benchmark.

Each photo is a smooth scene (sky gradient, shapes and text drawn small and upscaled, so edges are
soft as through a lens) with camera-like grain (luminance and weaker chroma noise), saved as a
4:2:0 JPEG at quality 92 with camera EXIF (make, model, lens, time, exposure, and an orientation:
a third of the photos are portrait shots stored sideways, orientation 6 or 8). The same seed
gives the same bytes, so every run measures the same files. Files are cached under .bench/.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, TiffImagePlugin

__all__ = ["GENERATOR_VERSION", "make_photo", "photo_set"]

GENERATOR_VERSION = 1
_ORIENTATIONS = (1, 6, 1, 8, 1, 1)


def _exif(index: int, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Benchcam"
    exif[0x0110] = "BC-12"
    exif[0x0131] = "bench 1.0"
    exif[0x0112] = orientation
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = f"2024:06:{1 + index % 28:02d} 10:{index % 60:02d}:00"
    sub[0x829A] = TiffImagePlugin.IFDRational(1, 125 + index)
    sub[0x829D] = TiffImagePlugin.IFDRational(40, 10)
    sub[0x8827] = 200 + 100 * (index % 8)
    sub[0x920A] = TiffImagePlugin.IFDRational(50, 1)
    sub[0xA434] = "Bench 24-70mm"
    return exif.tobytes()


def make_photo(index: int, width: int = 4000, height: int = 3000) -> bytes:
    """Photo number ``index`` as JPEG bytes (deterministic)."""
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
        draw.text((int(rng.integers(0, small_w // 2)), row), "Benchmark street 42", fill=(240, 240, 230))
    big = np.asarray(scene.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    big += rng.standard_normal((height, width, 1), dtype=np.float32) * 5.0  # luminance grain
    big += rng.standard_normal((height, width, 3), dtype=np.float32) * 2.0  # weaker chroma noise
    image = Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    orientation = _ORIENTATIONS[index % len(_ORIENTATIONS)]
    image.save(buffer, format="JPEG", quality=92, subsampling="4:2:0", exif=_exif(index, orientation))
    return buffer.getvalue()


def photo_set(directory: Path, count: int, width: int = 4000, height: int = 3000) -> list[Path]:
    """``count`` photos in ``directory`` (made once, reused while the generator version is the same)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"photo_v{GENERATOR_VERSION}_{width}x{height}_{index:03d}.jpg"
        if not path.exists():
            partial = path.with_suffix(".part")
            partial.write_bytes(make_photo(index, width, height))
            partial.rename(path)
        paths.append(path)
    return paths

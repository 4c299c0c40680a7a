"""Convert (another format, animations kept where the target can hold them) and Optimize (smaller
with no visible loss, judged by SSIM; never larger than the input)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image, ImageSequence

from services.processing.engine.decode import decoding, open_image
from services.processing.engine.encode import Encoded, EncodeSpec, encode, output_format
from services.processing.engine.pixels import to_srgb, workable
from services.processing.engine.thumbnail import decode_upright
from services.processing.limits import Limits
from services.processing.media import Source

__all__ = ["OptimizeResult", "convert_image", "optimize_image", "ssim"]

SSIM_EDGE = 1024
_LOSSY = ("JPEG", "WEBP", "AVIF")
_ANIMATED_TARGETS = ("GIF", "WEBP")
_QUALITY_RANGE = (30, 95)


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """Mean structural similarity of two same-size luminance arrays (box window)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if a.shape[0] < window or a.shape[1] < window:
        return 1.0 if np.array_equal(a, b) else float(1 - np.abs(a - b).mean() / 255)

    def mean(x: np.ndarray) -> np.ndarray:
        integral = np.pad(x.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        w = window
        total = integral[w:, w:] - integral[:-w, w:] - integral[w:, :-w] + integral[:-w, :-w]
        result: np.ndarray = total / (w * w)
        return result

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = mean(a), mean(b)
    var_a = mean(a * a) - mu_a**2
    var_b = mean(b * b) - mu_b**2
    cov = mean(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(value.mean())


def _luma(image: Image.Image) -> np.ndarray:
    """Luminance at half resolution at least (at most SSIM_EDGE): grain the eye does not see at normal
    viewing size must not count as a loss, or no photo could ever be recompressed."""
    grey = image.convert("L")
    factor = max(2, math.ceil(max(grey.size) / SSIM_EDGE))
    if min(grey.size) >= 32:
        grey = grey.reduce(factor)
    return np.asarray(grey)


def _animated(data: bytes, source: Source, spec: EncodeSpec, fmt: str, limits: Limits) -> Encoded | None:
    image = open_image(data, source, limits)
    frames_total = int(getattr(image, "n_frames", 1) or 1)
    if frames_total < 2 or fmt not in _ANIMATED_TARGETS:
        return None
    limits.check_frames(frames_total, f"{source.label} with {frames_total} frames")
    frames: list[Image.Image] = []
    durations: list[int] = []
    with decoding(source):
        for frame in ImageSequence.Iterator(image):
            durations.append(int(frame.info.get("duration", 100) or 100))
            frames.append(to_srgb(workable(frame.convert("RGBA")), frame.info.get("icc_profile")))
    first, rest = frames[0], frames[1:]
    buffer = BytesIO()
    options: dict[str, object] = {"save_all": True, "append_images": rest, "duration": durations, "loop": 0}
    if fmt == "WEBP":
        options.update(quality=spec.quality or 80, lossless=spec.lossless)
    first.save(buffer, format=fmt, **options)
    return Encoded(buffer.getvalue(), fmt, first.width, first.height)


def convert_image(data: bytes, source: Source, spec: EncodeSpec, limits: Limits) -> Encoded:
    """The image re-encoded as ``spec.format`` (upright, sRGB); animations stay animated in GIF/WebP."""
    upright, source_format, exif = decode_upright(data, source, limits)
    fmt = output_format(spec, source_format)
    animated = _animated(data, source, spec, fmt, limits)
    if animated is not None:
        return animated
    return encode(upright, spec, fmt, exif)


@dataclass(frozen=True)
class OptimizeResult:
    """The smaller encoding, or the input itself (``returned_original``), and its similarity to the source."""

    encoded: Encoded
    original_bytes: int
    ssim: float
    returned_original: bool


def optimize_image(
    data: bytes, source: Source, spec: EncodeSpec, min_ssim: float, limits: Limits
) -> OptimizeResult:
    """Re-encode smaller: lossy formats search the lowest quality keeping SSIM >= min_ssim (or use the
    asked quality); lossless formats recompress. The input is kept when nothing is smaller."""
    upright, source_format, exif = decode_upright(data, source, limits)
    fmt = output_format(spec, source_format)
    reference = _luma(upright)

    def similarity(candidate: Encoded) -> float:
        with Image.open(BytesIO(candidate.data)) as decoded:
            return ssim(reference, _luma(decoded))

    best: Encoded | None = None
    best_ssim = 1.0
    if fmt in _LOSSY and not spec.lossless:
        if spec.quality:
            best = encode(upright, spec, fmt, exif, optimize=True)
            best_ssim = similarity(best)
        else:
            low, high = _QUALITY_RANGE
            while low <= high:
                quality = (low + high) // 2
                candidate = encode(upright, _with_quality(spec, quality), fmt, exif, optimize=True)
                score = similarity(candidate)
                if score >= min_ssim:
                    best, best_ssim = candidate, score
                    high = quality - 1
                else:
                    low = quality + 1
    else:
        best = encode(upright, spec, fmt, exif, optimize=True)
    if best is None or len(best.data) >= len(data):
        original_format = "JPEG" if source_format == "MPO" else source_format
        original = Encoded(data, original_format, upright.width, upright.height)
        return OptimizeResult(original, len(data), 1.0, returned_original=True)
    return OptimizeResult(best, len(data), round(best_ssim, 5), returned_original=False)


def _with_quality(spec: EncodeSpec, quality: int) -> EncodeSpec:
    return EncodeSpec(spec.format, quality, spec.progressive, spec.lossless, spec.metadata)

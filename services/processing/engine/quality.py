"""Quality analysis: measured sharpness, exposure, contrast, noise, resolution and JPEG compression, and
the issues they reveal, judged against the documented thresholds in :data:`THRESHOLDS`.

Every measure except resolution and JPEG quality is taken on the upright luminance shrunk to
:data:`ANALYSIS_EDGE` pixels on its long edge (smaller images as they are), so scores do not depend
on the camera's pixel count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from services.processing.engine.decode import open_image
from services.processing.engine.thumbnail import shrink_upright
from services.processing.limits import Limits
from services.processing.media import Source

__all__ = [
    "ANALYSIS_EDGE",
    "THRESHOLDS",
    "QualityIssue",
    "QualityReport",
    "analyze_quality",
    "estimate_jpeg_quality",
]

ANALYSIS_EDGE = 1024

# Each issue: (measure, direction, threshold, worst). "below" issues fire when measure < threshold,
# "above" issues when measure > threshold; severity runs 0-1 from the threshold to "worst".
THRESHOLDS: dict[str, tuple[str, str, float, float]] = {
    "blurry": ("sharpness", "below", 50.0, 0.0),  # variance of the Laplacian
    "underexposed": ("mean_luminance", "below", 50.0, 0.0),  # 0-255
    "overexposed": ("mean_luminance", "above", 205.0, 255.0),
    "low_contrast": ("contrast", "below", 25.0, 0.0),  # std of luminance
    "noisy": ("noise", "above", 6.0, 30.0),  # estimated sigma, 0-255
    "low_resolution": ("megapixels", "below", 0.3, 0.0),  # 640x480 is 0.31 MP
    "heavy_compression": ("estimated_jpeg_quality", "below", 50.0, 1.0),  # JPEG only
}
CLIPPED_FRACTION = 0.3  # shadows/highlights share that also counts as under/over-exposure
_SHADOW, _HIGHLIGHT = 5, 250
# Penalty of an issue in the 0-100 score: a fixed part plus a part that grows with severity.
PENALTY_BASE, PENALTY_SEVERITY = 10.0, 30.0

# IJG standard luminance quantisation table (natural order), quality 50.
_STD_LUMA = np.array(
    [
        16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
    ],
    dtype=np.int64,
)  # fmt: skip


@dataclass(frozen=True)
class QualityIssue:
    """A named problem with the measure behind it."""

    kind: str
    severity: float
    measured: float
    threshold: float
    message: str


@dataclass(frozen=True)
class QualityReport:
    """The measures, the issues (worst first) and the 0-100 score."""

    score: float
    sharpness: float
    mean_luminance: float
    clipped_shadows: float
    clipped_highlights: float
    contrast: float
    noise: float
    megapixels: float
    estimated_jpeg_quality: int
    issues: list[QualityIssue] = field(default_factory=list)


def estimate_jpeg_quality(image: Image.Image) -> int:
    """The IJG quality (1-100) whose luminance table is closest to the file's; 0 when not a JPEG."""
    tables = getattr(image, "quantization", None)
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return 0
    actual = np.array(tables[0], dtype=np.int64)
    best, best_error = 0, None
    for quality in range(1, 101):
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality
        table = np.clip((_STD_LUMA * scale + 50) // 100, 1, 255)
        error = int(np.abs(table - actual).sum())
        if best_error is None or error < best_error:
            best, best_error = quality, error
    return best


def _laplacian_variance(lum: np.ndarray) -> float:
    if lum.shape[0] < 3 or lum.shape[1] < 3:
        return 0.0
    lap = lum[:-2, 1:-1] + lum[2:, 1:-1] + lum[1:-1, :-2] + lum[1:-1, 2:] - 4 * lum[1:-1, 1:-1]
    return float(lap.var())


def _noise_sigma(lum: np.ndarray) -> float:
    """Immerkaer's fast noise estimate, over flat regions only (edges are not noise)."""
    if lum.shape[0] < 3 or lum.shape[1] < 3:
        return 0.0
    c = lum[1:-1, 1:-1]
    response = (
        lum[:-2, :-2] + lum[:-2, 2:] + lum[2:, :-2] + lum[2:, 2:]
        - 2 * (lum[:-2, 1:-1] + lum[2:, 1:-1] + lum[1:-1, :-2] + lum[1:-1, 2:])
        + 4 * c
    )  # fmt: skip
    gx = np.abs(lum[1:-1, 2:] - lum[1:-1, :-2])
    gy = np.abs(lum[2:, 1:-1] - lum[:-2, 1:-1])
    gradient = gx + gy
    flat = gradient <= np.percentile(gradient, 50)
    values = np.abs(response[flat]) if flat.any() else np.abs(response)
    return float(math.sqrt(math.pi / 2) * values.mean() / 6)


def _severity(direction: str, measured: float, threshold: float, worst: float) -> float | None:
    if direction == "below" and measured < threshold:
        return min(1.0, (threshold - measured) / max(threshold - worst, 1e-9))
    if direction == "above" and measured > threshold:
        return min(1.0, (measured - threshold) / max(worst - threshold, 1e-9))
    return None


def _issues(measures: dict[str, float], shadows: float, highlights: float) -> list[QualityIssue]:
    found: list[QualityIssue] = []
    for kind, (measure, direction, threshold, worst) in THRESHOLDS.items():
        measured, limit = measures[measure], threshold
        if kind == "heavy_compression" and measured == 0:
            continue  # not a JPEG
        severity = _severity(direction, measured, limit, worst)
        word = "below" if direction == "below" else "above"
        name = kind.replace("_", " ")
        message = f"{measure.replace('_', ' ')} {measured:.3g} is {word} the {name} threshold {limit:g}"
        if severity is None and kind in ("underexposed", "overexposed"):
            share = shadows if kind == "underexposed" else highlights
            if share > CLIPPED_FRACTION:
                severity = min(1.0, (share - CLIPPED_FRACTION) / (1 - CLIPPED_FRACTION))
                side = "shadows" if kind == "underexposed" else "highlights"
                message = f"{share:.0%} of pixels are clipped {side}, more than {CLIPPED_FRACTION:.0%}"
                measured, limit = share, CLIPPED_FRACTION
        if severity is not None:
            found.append(QualityIssue(kind, round(severity, 4), measured, limit, message))
    found.sort(key=lambda issue: issue.severity, reverse=True)
    return found


def analyze_quality(data: bytes, source: Source, limits: Limits) -> QualityReport:
    """Measure the image and name its problems."""
    image = open_image(data, source, limits)
    megapixels = image.width * image.height / 1e6
    jpeg_quality = estimate_jpeg_quality(image)
    small, _ = shrink_upright(image, source, (ANALYSIS_EDGE, ANALYSIS_EDGE))
    lum = np.asarray(small.convert("L"), dtype=np.float32)
    total = max(lum.size, 1)
    shadows = float((lum <= _SHADOW).sum()) / total
    highlights = float((lum >= _HIGHLIGHT).sum()) / total
    measures = {
        "sharpness": _laplacian_variance(lum),
        "mean_luminance": float(lum.mean()),
        "contrast": float(lum.std()),
        "noise": _noise_sigma(lum),
        "megapixels": megapixels,
        "estimated_jpeg_quality": float(jpeg_quality),
    }
    issues = _issues(measures, shadows, highlights)
    penalty = sum(PENALTY_BASE + PENALTY_SEVERITY * issue.severity for issue in issues)
    return QualityReport(
        score=round(max(0.0, 100.0 - penalty), 2),
        sharpness=round(measures["sharpness"], 3),
        mean_luminance=round(measures["mean_luminance"], 3),
        clipped_shadows=round(shadows, 5),
        clipped_highlights=round(highlights, 5),
        contrast=round(measures["contrast"], 3),
        noise=round(measures["noise"], 3),
        megapixels=round(megapixels, 4),
        estimated_jpeg_quality=jpeg_quality,
        issues=issues,
    )

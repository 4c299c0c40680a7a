"""The limits every operation enforces on media from outside, each named with the variable that sets it.

A limit is checked as early as the information allows: bytes before reading, pixels from the
header before decoding, frames while counting, output sizes before any work.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.errors import LimitExceeded

__all__ = ["LIMIT_ENV", "Limits"]

# limit name -> the environment variable that sets it (named in RESOURCE_EXHAUSTED errors)
LIMIT_ENV = {
    "max_pixels": "PROCESSING_MAX_PIXELS",
    "max_file_bytes": "PROCESSING_MAX_FILE_BYTES",
    "max_inline_bytes": "PROCESSING_MAX_INLINE_BYTES",
    "max_frames": "PROCESSING_MAX_FRAMES",
    "max_extract_frames": "PROCESSING_MAX_EXTRACT_FRAMES",
    "max_output_dimension": "PROCESSING_MAX_OUTPUT_DIMENSION",
    "max_probe_many": "PROCESSING_MAX_PROBE_MANY",
    "operation_timeout_seconds": "PROCESSING_OPERATION_TIMEOUT",
    "worker_memory_bytes": "PROCESSING_WORKER_MEMORY",
    "queue_size": "PROCESSING_QUEUE_SIZE",
}


@dataclass(frozen=True)
class Limits:
    """Configured limits. Plain data, so it travels to worker processes."""

    max_pixels: int = 100_000_000
    max_file_bytes: int = 256 * 1024**2
    max_inline_bytes: int = 32 * 1024**2
    max_frames: int = 10_000
    max_extract_frames: int = 100
    max_output_dimension: int = 8192
    operation_timeout_seconds: float = 30.0
    max_probe_many: int = 256
    inline_output_max_bytes: int = 4 * 1024**2
    max_message_bytes: int = 64 * 1024**2

    def exceeded(self, limit: str, actual: float, what: str) -> LimitExceeded:
        """The error for ``actual`` above the limit called ``limit``."""
        return LimitExceeded(limit, getattr(self, limit), actual, env=LIMIT_ENV.get(limit, ""), what=what)

    def check_pixels(self, width: int, height: int) -> None:
        """Refuse an image whose header promises more pixels than allowed (a decompression bomb)."""
        if width * height > self.max_pixels:
            raise self.exceeded("max_pixels", width * height, f"image of {width}x{height} pixels")

    def check_output(self, width: int, height: int, field: str) -> None:
        """Refuse an asked-for output larger than the output dimension limit."""
        largest = max(width, height)
        if largest > self.max_output_dimension:
            raise self.exceeded("max_output_dimension", largest, f"{field} of {width}x{height}")

    def check_frames(self, count: int, what: str = "frames") -> None:
        """Refuse more frames than allowed."""
        if count > self.max_frames:
            raise self.exceeded("max_frames", count, what)

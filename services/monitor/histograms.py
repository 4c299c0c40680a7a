"""Histogram arithmetic for OTLP data: deltas of cumulative points, merging, and quantiles.

Two layouts, as OpenTelemetry exports them:

- explicit buckets: ``bounds`` b0 < b1 < ... and ``counts`` with one more entry than ``bounds``
  (bucket i holds values in (b[i-1], b[i]]; the last one everything above the last bound);
- base-2 exponential: ``scale`` s and a map index -> count, where bucket i holds values in
  (base**i, base**(i+1)] with base = 2**(2**-s), plus a count of zeros.

Quantiles interpolate inside the bucket that holds the rank (linearly for explicit buckets, as
Prometheus' histogram_quantile does; geometrically for exponential ones, whose relative error is
then below base - 1, about 4% at the SDK's usual scales).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ExplicitBuckets", "ExponentialBuckets", "quantile"]


@dataclass(slots=True)
class ExplicitBuckets:
    """Counts over fixed bounds."""

    bounds: tuple[float, ...]
    counts: list[int]

    @property
    def total(self) -> int:
        """Values counted."""
        return sum(self.counts)

    def minus(self, earlier: ExplicitBuckets) -> ExplicitBuckets | None:
        """self - earlier, or None when they are not comparable (other bounds, a count went down)."""
        if earlier.bounds != self.bounds or len(earlier.counts) != len(self.counts):
            return None
        diff = [a - b for a, b in zip(self.counts, earlier.counts, strict=True)]
        if any(d < 0 for d in diff):
            return None
        return ExplicitBuckets(self.bounds, diff)

    def add(self, other: ExplicitBuckets) -> bool:
        """Add other's counts in place; False (and nothing added) when the bounds differ."""
        if other.bounds != self.bounds or len(other.counts) != len(self.counts):
            return False
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        return True

    def quantile(self, q: float) -> float:
        """The q-quantile (0-1); NaN when empty."""
        total = self.total
        if total == 0:
            return math.nan
        rank = q * total
        seen = 0
        for i, count in enumerate(self.counts):
            if count and seen + count >= rank:
                if i == len(self.bounds):  # above the last bound: its lower edge is all we know
                    return self.bounds[-1] if self.bounds else math.nan
                upper = self.bounds[i]
                lower = self.bounds[i - 1] if i > 0 else min(0.0, upper)
                return lower + (upper - lower) * ((rank - seen) / count)
            seen += count
        return self.bounds[-1] if self.bounds else math.nan


@dataclass(slots=True)
class ExponentialBuckets:
    """Base-2 exponential buckets of non-negative values: ``counts[k]`` is bucket ``offset + k``
    (dense, as OTLP sends them; negative buckets are not used here)."""

    scale: int
    zero: int
    offset: int
    counts: list[int]

    @property
    def total(self) -> int:
        """Values counted."""
        return self.zero + sum(self.counts)

    def downscaled(self, scale: int) -> ExponentialBuckets:
        """The same counts at a coarser (or equal) scale: each step merges pairs of buckets."""
        shift = self.scale - scale
        if shift <= 0 or not self.counts:
            return ExponentialBuckets(
                min(self.scale, scale), self.zero, self.offset >> max(shift, 0), self.counts
            )
        offset = self.offset >> shift
        merged = [0] * (((self.offset + len(self.counts) - 1) >> shift) - offset + 1)
        for k, count in enumerate(self.counts):
            merged[((self.offset + k) >> shift) - offset] += count
        return ExponentialBuckets(scale, self.zero, offset, merged)

    def _same_layout(self, other: ExponentialBuckets) -> bool:
        return (
            self.scale == other.scale
            and self.offset == other.offset
            and len(self.counts) == len(other.counts)
        )

    def _aligned(self, other: ExponentialBuckets) -> tuple[ExponentialBuckets, ExponentialBuckets, int, int]:
        scale = min(self.scale, other.scale)
        a, b = self.downscaled(scale), other.downscaled(scale)
        low = min(a.offset if a.counts else b.offset, b.offset if b.counts else a.offset)
        high = max(a.offset + len(a.counts), b.offset + len(b.counts))
        return a, b, low, max(high - low, 0)

    def minus(self, earlier: ExponentialBuckets) -> ExponentialBuckets | None:
        """self - earlier at the coarser of the two scales; None when a count went down."""
        if self._same_layout(earlier):  # the usual case: one series, one layout, fast
            diff = [x - y for x, y in zip(self.counts, earlier.counts, strict=True)]
            zero = self.zero - earlier.zero
            if zero < 0 or (diff and min(diff) < 0):
                return None
            return ExponentialBuckets(self.scale, zero, self.offset, diff)
        a, b, low, size = self._aligned(earlier)
        diff = [0] * size
        for k, count in enumerate(a.counts):
            diff[a.offset - low + k] += count
        for k, count in enumerate(b.counts):
            i = b.offset - low + k
            diff[i] -= count
            if diff[i] < 0:
                return None
        zero = a.zero - b.zero
        if zero < 0:
            return None
        return ExponentialBuckets(a.scale, zero, low, diff)

    def merged(self, other: ExponentialBuckets) -> ExponentialBuckets:
        """The sum of both, at the coarser scale."""
        if self._same_layout(other):
            summed = [x + y for x, y in zip(self.counts, other.counts, strict=True)]
            return ExponentialBuckets(self.scale, self.zero + other.zero, self.offset, summed)
        a, b, low, size = self._aligned(other)
        counts = [0] * size
        for source in (a, b):
            start = source.offset - low
            for k, count in enumerate(source.counts):
                counts[start + k] += count
        return ExponentialBuckets(a.scale, a.zero + b.zero, low, counts)

    def quantile(self, q: float) -> float:
        """The q-quantile (0-1); NaN when empty."""
        total = self.total
        if total == 0:
            return math.nan
        rank = q * total
        if rank <= self.zero:
            return 0.0
        seen = self.zero
        base = 2.0 ** (2.0**-self.scale)
        for k, count in enumerate(self.counts):
            if count and seen + count >= rank:
                return float(base ** (self.offset + k + (rank - seen) / count))
            seen += count
        return float(base ** (self.offset + len(self.counts)))


def quantile(buckets: ExplicitBuckets | ExponentialBuckets, q: float) -> float:
    """The q-quantile of either layout."""
    return buckets.quantile(q)

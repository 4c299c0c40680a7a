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
    """Base-2 exponential buckets of non-negative values (negative buckets are not used here)."""

    scale: int
    zero: int
    counts: dict[int, int]

    @property
    def total(self) -> int:
        """Values counted."""
        return self.zero + sum(self.counts.values())

    def downscaled(self, scale: int) -> ExponentialBuckets:
        """The same counts at a coarser (or equal) scale: each step merges pairs of buckets."""
        shift = self.scale - scale
        if shift <= 0:
            return self
        merged: dict[int, int] = {}
        for index, count in self.counts.items():
            key = index >> shift
            merged[key] = merged.get(key, 0) + count
        return ExponentialBuckets(scale, self.zero, merged)

    def minus(self, earlier: ExponentialBuckets) -> ExponentialBuckets | None:
        """self - earlier at the coarser of the two scales; None when a count went down."""
        scale = min(self.scale, earlier.scale)
        a, b = self.downscaled(scale), earlier.downscaled(scale)
        diff = dict(a.counts)
        for index, count in b.counts.items():
            left = diff.get(index, 0) - count
            if left < 0:
                return None
            diff[index] = left
        zero = a.zero - b.zero
        if zero < 0:
            return None
        return ExponentialBuckets(scale, zero, {i: c for i, c in diff.items() if c})

    def merged(self, other: ExponentialBuckets) -> ExponentialBuckets:
        """The sum of both, at the coarser scale."""
        scale = min(self.scale, other.scale)
        a, b = self.downscaled(scale), other.downscaled(scale)
        counts = dict(a.counts)
        for index, count in b.counts.items():
            counts[index] = counts.get(index, 0) + count
        return ExponentialBuckets(scale, a.zero + b.zero, counts)

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
        for index in sorted(self.counts):
            count = self.counts[index]
            if count and seen + count >= rank:
                fraction = (rank - seen) / count
                return float(base ** (index + fraction))
            seen += count
        return float(base ** (max(self.counts) + 1)) if self.counts else 0.0


def quantile(buckets: ExplicitBuckets | ExponentialBuckets, q: float) -> float:
    """The q-quantile of either layout."""
    return buckets.quantile(q)

"""Per-caller rate limits: a token bucket per API key (or per client address without keys).

Each caller may make ``rate`` requests a second on average and ``burst`` at once. A request over
the limit is answered 429 with ``Retry-After`` (whole seconds until a token is back) before any
body is read or any upstream is called. Buckets live in memory, one per caller, and at most
``max_callers`` of them (least recently used dropped first), so callers that change address
cannot make the gateway grow.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go ahead, and if not, how long the caller should wait."""

    allowed: bool
    retry_after_seconds: int = 0


class RateLimiter:
    """Token buckets by caller; ``rate`` <= 0 turns the limit off."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_callers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # caller -> (tokens, at)

    @property
    def enabled(self) -> bool:
        """False when no limit is configured."""
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, caller: str) -> Verdict:
        """Spend one token of ``caller``'s bucket, or say how long until one is back."""
        if not self.enabled:
            return Verdict(True)
        now = self._clock()
        tokens, at = self._buckets.pop(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._remember(caller, tokens - 1.0, now)
            return Verdict(True)
        self._remember(caller, tokens, now)
        return Verdict(False, max(1, math.ceil((1.0 - tokens) / self.rate)))

    def _remember(self, caller: str, tokens: float, now: float) -> None:
        self._buckets[caller] = (tokens, now)
        while len(self._buckets) > self._max_callers:
            self._buckets.popitem(last=False)

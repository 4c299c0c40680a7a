"""Live streams that never buffer without bound.

- :class:`AlertFeed`: each StreamAlerts caller gets a queue of at most ``capacity`` events. When a
  slow caller's queue is full, later events are dropped and counted until it has caught up; it
  then gets the active alerts again (one FIRED event each, marked with the count dropped), so it
  ends up knowing the current state without the backlog.
- :class:`Pacer`: StreamMetrics sends the latest snapshot at each tick. When sending took longer
  than the interval, the ticks missed are skipped (coalesced into the next snapshot) and counted.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

from services.monitor.alerts import AlertEvent, Level

__all__ = ["AlertFeed", "FeedItem", "Pacer"]

FeedItem = tuple[AlertEvent, int]
"""An event and the number of events dropped just before it."""


class AlertFeed:
    """One caller's bounded queue of alert events."""

    def __init__(self, capacity: int, min_level: Level, resync: Callable[[], list[AlertEvent]]) -> None:
        self._queue: deque[AlertEvent] = deque()
        self._capacity = capacity
        self._min_level = min_level
        self._resync = resync
        self._ready = asyncio.Event()
        self._dropped = 0
        self.dropped_total = 0

    def wanted(self, event: AlertEvent) -> bool:
        """Whether the caller asked for this event's level."""
        return max(event.alert.level, event.previous) >= self._min_level

    def publish(self, event: AlertEvent) -> None:
        """Queue an event (called by the engine, on the event loop); drop it when the queue is full."""
        if not self.wanted(event):
            return
        if self._dropped or len(self._queue) >= self._capacity:
            self._dropped += 1
            self.dropped_total += 1
        else:
            self._queue.append(event)
        self._ready.set()

    async def next(self) -> list[FeedItem]:
        """Wait for events; returns what is queued (with the resent active set after a drop)."""
        while not self._queue and not self._dropped:
            self._ready.clear()
            await self._ready.wait()
        if self._queue:
            items = [(event, 0) for event in self._queue]
            self._queue.clear()
            return items
        dropped, self._dropped = self._dropped, 0
        active = [e for e in self._resync() if self.wanted(e)]
        if not active:
            return []
        return [(active[0], dropped), *((e, 0) for e in active[1:])]

    @property
    def dropped_pending(self) -> int:
        """Events dropped and not reported yet."""
        return self._dropped


class Pacer:
    """Ticks every ``interval`` seconds; says how many ticks were missed since the previous one."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._next = clock()

    async def wait(self) -> int:
        """Sleep until the next tick; returns the ticks skipped because the caller was late."""
        now = self._clock()
        missed = 0
        if now > self._next + self.interval:
            missed = math.floor((now - self._next) / self.interval)
            self._next += missed * self.interval
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)
        self._next += self.interval
        return missed

"""Metric history in fixed-size ring buffers, with a cap on the number of series.

Every series (a metric name plus a set of labels) holds two rings of time slots:

- full resolution: one slot per sampling interval, covering the last hour;
- roll-ups: one slot per minute, covering the last 24 hours.

A slot keeps the count, sum, minimum and maximum of the samples that fell in it, so a point of
any step is exact (min of mins, max of maxes, sum over count). Both rings are allocated once when
the series is created and never grow: memory is ``series_limit * bytes_per_series`` at most,
whatever is sent to the monitor. A sample for a new series beyond the limit is dropped and
counted; series that received nothing for 24 hours are removed to make room.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from services.runtime.errors import InvalidArgument, NotFound

__all__ = [
    "Descriptor",
    "HistoryPoint",
    "LabelSet",
    "Series",
    "SeriesStore",
    "SeriesSummary",
    "SlotRing",
    "label_set",
]

LabelSet = tuple[tuple[str, str], ...]
"""Labels of a series, sorted by name (hashable, one spelling per set)."""

_SLOT_BYTES = 4 + 8 + 8 + 8  # count (uint32), sum, min, max (float64)

FULL_SPAN = 3600.0
ROLLUP_WIDTH = 60.0
ROLLUP_SPAN = 86400.0


def label_set(labels: Mapping[str, str]) -> LabelSet:
    """The canonical (sorted) form of a label mapping."""
    return tuple(sorted(labels.items()))


class HistoryPoint(NamedTuple):
    """Aggregate of the samples in one step: start time (s since the epoch), mean, min, max, count."""

    time: float
    avg: float
    min: float
    max: float
    samples: int


class SlotRing:
    """``capacity`` consecutive slots of ``width`` seconds ending at the newest sample's slot."""

    __slots__ = ("capacity", "count", "head", "high", "low", "total", "width")

    def __init__(self, width: float, capacity: int) -> None:
        self.width = width
        self.capacity = capacity
        self.head = -1  # absolute number (time // width) of the newest slot; -1: empty
        self.count = array("I", bytes(4 * capacity))
        self.total = array("d", bytes(8 * capacity))
        self.low = array("d", bytes(8 * capacity))
        self.high = array("d", bytes(8 * capacity))

    def add(self, time: float, value: float) -> bool:
        """Add a sample; False when it is older than the ring reaches."""
        number = int(time // self.width)
        head = self.head
        capacity = self.capacity
        if number != head:
            if number > head:
                count = self.count
                if head >= 0:
                    for n in range(head + 1, min(number, head + capacity) + 1):
                        count[n % capacity] = 0
                else:
                    count[number % capacity] = 0
                self.head = number
            elif number <= head - capacity:
                return False
        i = number % capacity
        n = self.count[i]
        if n == 0:
            self.count[i] = 1
            self.total[i] = self.low[i] = self.high[i] = value
        else:
            self.count[i] = n + 1
            self.total[i] += value
            if value < self.low[i]:
                self.low[i] = value
            elif value > self.high[i]:
                self.high[i] = value
        return True

    def slots(self, since: float, until: float) -> Iterator[tuple[int, int]]:
        """(absolute slot number, index) of the non-empty slots whose start lies in (since, until]."""
        if self.head < 0:
            return
        first = max(math.floor(since / self.width) + 1, self.head - self.capacity + 1)
        last = min(int(until // self.width), self.head)
        for number in range(first, last + 1):
            i = number % self.capacity
            if self.count[i]:
                yield number, i

    def points(self, since: float, until: float, step: float) -> list[HistoryPoint]:
        """Points of ``step`` seconds (a whole number of slots, aligned to the epoch), oldest first."""
        per_step = max(1, round(step / self.width))
        points: list[HistoryPoint] = []
        group = -1
        count = 0
        total = low = high = 0.0
        for number, i in self.slots(since, until):
            g = number // per_step
            if g != group:
                if count:
                    points.append(
                        HistoryPoint(group * per_step * self.width, total / count, low, high, count)
                    )
                group, count, total, low, high = g, 0, 0.0, math.inf, -math.inf
            count += self.count[i]
            total += self.total[i]
            low = min(low, self.low[i])
            high = max(high, self.high[i])
        if count:
            points.append(HistoryPoint(group * per_step * self.width, total / count, low, high, count))
        return points

    def means(self, since: float, until: float) -> list[float]:
        """The mean of each non-empty slot in the period."""
        return [self.total[i] / self.count[i] for _, i in self.slots(since, until)]


@dataclass
class Series:
    """One metric with one set of labels: its latest value and its two rings."""

    name: str
    labels: LabelSet
    full: SlotRing
    rollup: SlotRing
    value: float = math.nan
    time: float = 0.0

    @property
    def label_map(self) -> dict[str, str]:
        """The labels as a dict."""
        return dict(self.labels)


@dataclass
class Descriptor:
    """What a metric is: unit, meaning, where it comes from, how many series it has."""

    name: str
    unit: str
    description: str
    source: str
    series: dict[LabelSet, Series] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class SeriesSummary:
    """min/avg/max/p95 of one series over a period."""

    series: Series
    unit: str
    min: float
    avg: float
    max: float
    p95: float
    total: float
    count: int


class SeriesStore:
    """Every series the monitor holds, under a limit on how many there are."""

    def __init__(self, resolution: float, series_limit: int) -> None:
        if resolution <= 0 or resolution > ROLLUP_WIDTH:
            raise ValueError(f"resolution must be in (0, {ROLLUP_WIDTH:g}] seconds, not {resolution}")
        self.resolution = resolution
        self.series_limit = series_limit
        self.full_slots = math.ceil(FULL_SPAN / resolution)
        self.rollup_slots = math.ceil(ROLLUP_SPAN / ROLLUP_WIDTH)
        self.metrics: dict[str, Descriptor] = {}
        self.count = 0
        self.dropped_samples = 0
        self.version = 0  # bumped on every change: lets readers cache what they build

    @property
    def bytes_per_series(self) -> int:
        """Bytes the two rings of one series take (the arrays; Python object overhead aside)."""
        return (self.full_slots + self.rollup_slots) * _SLOT_BYTES

    @property
    def memory_bound(self) -> int:
        """Bytes of ring storage when the series limit is reached."""
        return self.series_limit * self.bytes_per_series

    def describe(self, name: str, unit: str, description: str, source: str) -> Descriptor:
        """The descriptor of ``name``, created on first use (unit and meaning fill in when known)."""
        descriptor = self.metrics.get(name)
        if descriptor is None:
            descriptor = Descriptor(name, unit, description, source)
            self.metrics[name] = descriptor
        else:
            descriptor.unit = descriptor.unit or unit
            descriptor.description = descriptor.description or description
        return descriptor

    def record(
        self,
        name: str,
        labels: LabelSet,
        value: float,
        time: float,
        *,
        unit: str = "",
        description: str = "",
        source: str = "",
    ) -> Series | None:
        """Add one sample; None when it was dropped (series limit reached, or not a finite number)."""
        if not math.isfinite(value):
            return None
        descriptor = self.metrics.get(name) or self.describe(name, unit, description, source)
        series = descriptor.series.get(labels)
        if series is None:
            if self.count >= self.series_limit:
                self.dropped_samples += 1
                return None
            series = Series(
                name,
                labels,
                SlotRing(self.resolution, self.full_slots),
                SlotRing(ROLLUP_WIDTH, self.rollup_slots),
            )
            descriptor.series[labels] = series
            self.count += 1
        series.full.add(time, value)
        series.rollup.add(time, value)
        if time >= series.time:
            series.value = value
            series.time = time
        self.version += 1
        return series

    def latest(self, prefix: str = "") -> list[Series]:
        """The series whose metric names start with ``prefix``, by name then labels."""
        found: list[Series] = []
        for name in sorted(self.metrics):
            if name.startswith(prefix):
                descriptor = self.metrics[name]
                found.extend(descriptor.series[labels] for labels in sorted(descriptor.series))
        return found

    def matching(self, name: str, labels: Mapping[str, str]) -> list[Series]:
        """The series of ``name`` whose labels include all of ``labels``; NotFound for an unknown name."""
        descriptor = self.metrics.get(name)
        if descriptor is None or not descriptor.series:
            raise NotFound(f"no metric named {name!r}; ListMetrics shows the metrics known")
        wanted = labels.items()
        return [descriptor.series[key] for key in sorted(descriptor.series) if wanted <= dict(key).items()]

    def history(
        self, name: str, labels: Mapping[str, str], window: float, step: float | None, now: float
    ) -> tuple[float, list[tuple[Series, list[HistoryPoint]]]]:
        """Points of every matching series over ``window`` seconds ending now; returns the step used.

        Up to one hour back, steps are whole multiples of the sampling interval; beyond, whole
        minutes (the roll-ups).
        """
        if not 0 < window <= ROLLUP_SPAN:
            raise InvalidArgument(
                f"window must be more than 0 and at most 24h, not {window:g}s", field="window"
            )
        fine = window <= FULL_SPAN
        width = self.resolution if fine else ROLLUP_WIDTH
        if step is None or step == 0:
            step = width
        elif step < width:
            where = "for a window up to 1h" if fine else "for a window beyond 1h (one-minute roll-ups)"
            raise InvalidArgument(f"step must be at least {width:g}s {where}, not {step:g}s", field="step")
        elif step > window:
            raise InvalidArgument(f"step ({step:g}s) must not exceed the window ({window:g}s)", field="step")
        step = math.ceil(step / width - 1e-9) * width
        found = self.matching(name, labels)
        since = now - window
        return step, [
            (series, (series.full if fine else series.rollup).points(since, now, step)) for series in found
        ]

    def summaries(self, since: float, until: float, series: Iterable[Series]) -> list[SeriesSummary]:
        """min/avg/max/p95 of each series over the period (p95 of the slot means, nearest rank).

        Periods up to one hour use full-resolution slots; longer ones the one-minute roll-ups.
        """
        fine = until - since <= FULL_SPAN
        out: list[SeriesSummary] = []
        for s in series:
            ring = s.full if fine else s.rollup
            count = 0
            total = 0.0
            low, high = math.inf, -math.inf
            means: list[float] = []
            for _, i in ring.slots(since, until):
                count += ring.count[i]
                total += ring.total[i]
                low = min(low, ring.low[i])
                high = max(high, ring.high[i])
                means.append(ring.total[i] / ring.count[i])
            if not count:
                continue
            means.sort()
            p95 = means[min(len(means) - 1, max(0, math.ceil(0.95 * len(means)) - 1))]
            unit = self.metrics[s.name].unit
            out.append(SeriesSummary(s, unit, low, total / count, high, p95, total, count))
        return out

    def evict_idle(self, now: float) -> int:
        """Remove series that received nothing for 24 hours; returns how many."""
        removed = 0
        for descriptor in list(self.metrics.values()):
            for key, series in list(descriptor.series.items()):
                if now - series.time > ROLLUP_SPAN:
                    del descriptor.series[key]
                    removed += 1
            if not descriptor.series:
                del self.metrics[descriptor.name]
        self.count -= removed
        if removed:
            self.version += 1
        return removed

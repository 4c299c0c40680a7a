"""Statistics per namespace: counters on the hot path, latency samples, reports, OpenTelemetry.

The hot path only increments integers and stores one float per backend operation in a ring of
recent samples; percentiles, ratios and sizes are computed when someone asks (GetStats, or the
OpenTelemetry reader at export time through observable instruments), so statistics cost a call
almost nothing whether metrics are exported or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from opentelemetry import metrics

from services.cache.backend import BackendState, Usage

__all__ = ["Counters", "NamespaceReport", "Stats", "StatsReport", "register_metrics"]

SAMPLES = 2048


class Counters:
    """The counters of one namespace since the service started."""

    __slots__ = ("_next", "deletes", "hits", "latencies", "misses", "sets", "stale")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.stale = 0
        self.sets = 0
        self.deletes = 0
        self.latencies: list[float] = []
        self._next = 0

    def latency(self, seconds: float) -> None:
        """Remember one backend operation's duration (the most recent SAMPLES are kept)."""
        samples = self.latencies
        if len(samples) < SAMPLES:
            samples.append(seconds)
        else:
            samples[self._next] = seconds
            self._next = (self._next + 1) % SAMPLES


@dataclass(frozen=True)
class NamespaceReport:
    """Statistics of one namespace ("" for the total)."""

    namespace: str
    hits: int
    misses: int
    stale_misses: int
    sets: int
    deletes: int
    evictions: int
    usage: Usage
    latency_p50_us: float
    latency_p99_us: float

    @property
    def hit_ratio(self) -> float:
        """hits / (hits + misses), 0 without gets."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    @property
    def compression_ratio(self) -> float:
        """raw bytes / stored bytes, 1.0 when nothing is stored."""
        return self.usage.raw_bytes / self.usage.stored_bytes if self.usage.stored_bytes else 1.0


@dataclass(frozen=True)
class StatsReport:
    """GetStats: per namespace, the total, and the backend's state."""

    namespaces: list[NamespaceReport]
    total: NamespaceReport
    backend: BackendState


def _percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass
class Stats:
    """Counters of every namespace, and the last known usage of each."""

    names: Sequence[str]
    counters: dict[str, Counters] = field(init=False)
    usage: dict[str, Usage] = field(init=False)

    def __post_init__(self) -> None:
        self.counters = {name: Counters() for name in self.names}
        self.usage = {name: Usage() for name in self.names}

    def report(
        self, names: Iterable[str], evictions: Callable[[str], int], backend: BackendState
    ) -> StatsReport:
        """A report of ``names`` with the total over every namespace."""
        rows = {name: self._row(name, self.counters[name].latencies, evictions(name)) for name in self.names}
        samples = sorted(s for c in self.counters.values() for s in c.latencies)
        total = NamespaceReport(
            "",
            sum(r.hits for r in rows.values()),
            sum(r.misses for r in rows.values()),
            sum(r.stale_misses for r in rows.values()),
            sum(r.sets for r in rows.values()),
            sum(r.deletes for r in rows.values()),
            sum(r.evictions for r in rows.values()),
            Usage(
                sum(r.usage.entries for r in rows.values()),
                sum(r.usage.raw_bytes for r in rows.values()),
                sum(r.usage.stored_bytes for r in rows.values()),
            ),
            _percentile(samples, 50) * 1e6,
            _percentile(samples, 99) * 1e6,
        )
        return StatsReport([rows[name] for name in names], total, backend)

    def _row(self, name: str, latencies: list[float], evicted: int) -> NamespaceReport:
        c = self.counters[name]
        ordered = sorted(latencies)
        return NamespaceReport(
            name,
            c.hits,
            c.misses,
            c.stale,
            c.sets,
            c.deletes,
            evicted,
            self.usage[name],
            _percentile(ordered, 50) * 1e6,
            _percentile(ordered, 99) * 1e6,
        )


def register_metrics(
    meter: metrics.Meter,
    stats: Stats,
    evictions: Callable[[str], int],
    backend: Callable[[], BackendState],
) -> None:
    """Export the statistics as OpenTelemetry observable instruments (read at export time).

    Counters (monotonic, per ``cache.namespace``): cache.hits, cache.misses (with
    ``cache.miss_reason`` absent/stale), cache.sets, cache.deletes, cache.evictions. Gauges:
    cache.entries, cache.bytes (``cache.bytes.kind`` raw/stored), cache.compression_ratio,
    cache.backend.latency (``quantile`` 0.5/0.99, microseconds), cache.degraded (1 while memory
    serves in place of Redis), cache.failovers.

    No hit ratio gauge: the monitor derives ``cache.hit_ratio`` (%, per export interval) from the
    two counters under that name, and a 0-1 ratio since start exported beside it would share its
    series. The ratio since start stays in GetStats.
    """

    def per_namespace(
        value: Callable[[str, Counters], float],
    ) -> Callable[[object], list[metrics.Observation]]:
        def observe(_options: object) -> list[metrics.Observation]:
            return [
                metrics.Observation(value(name, c), {"cache.namespace": name})
                for name, c in stats.counters.items()
            ]

        return observe

    def misses(_options: object) -> list[metrics.Observation]:
        out = []
        for name, c in stats.counters.items():
            out.append(
                metrics.Observation(
                    c.misses - c.stale, {"cache.namespace": name, "cache.miss_reason": "absent"}
                )
            )
            out.append(metrics.Observation(c.stale, {"cache.namespace": name, "cache.miss_reason": "stale"}))
        return out

    def sizes(_options: object) -> list[metrics.Observation]:
        out = []
        for name, usage in stats.usage.items():
            out.append(
                metrics.Observation(usage.raw_bytes, {"cache.namespace": name, "cache.bytes.kind": "raw"})
            )
            out.append(
                metrics.Observation(
                    usage.stored_bytes, {"cache.namespace": name, "cache.bytes.kind": "stored"}
                )
            )
        return out

    def latency(_options: object) -> list[metrics.Observation]:
        out = []
        for name, c in stats.counters.items():
            ordered = sorted(c.latencies)
            for q in (50, 99):
                out.append(
                    metrics.Observation(
                        _percentile(ordered, q) * 1e6, {"cache.namespace": name, "quantile": q / 100}
                    )
                )
        return out

    def report_rows(_options: object) -> list[NamespaceReport]:
        return stats.report(stats.names, evictions, backend()).namespaces

    def ratio(attr: str) -> Callable[[object], list[metrics.Observation]]:
        def observe(options: object) -> list[metrics.Observation]:
            return [
                metrics.Observation(getattr(row, attr), {"cache.namespace": row.namespace})
                for row in report_rows(options)
            ]

        return observe

    meter.create_observable_counter(
        "cache.hits",
        [per_namespace(lambda _, c: c.hits)],
        unit="{get}",
        description="Gets that returned a value",
    )
    meter.create_observable_counter(
        "cache.misses", [misses], unit="{get}", description="Gets that returned nothing, by reason"
    )
    meter.create_observable_counter(
        "cache.sets", [per_namespace(lambda _, c: c.sets)], unit="{entry}", description="Entries stored"
    )
    meter.create_observable_counter(
        "cache.deletes",
        [per_namespace(lambda _, c: c.deletes)],
        unit="{entry}",
        description="Entries deleted by callers or invalidation",
    )
    meter.create_observable_counter(
        "cache.evictions",
        [per_namespace(lambda name, _: evictions(name))],
        unit="{entry}",
        description="Entries evicted by the memory backend's byte budget",
    )
    meter.create_observable_gauge(
        "cache.entries",
        [per_namespace(lambda name, _: stats.usage[name].entries)],
        unit="{entry}",
        description="Entries held",
    )
    meter.create_observable_gauge("cache.bytes", [sizes], unit="By", description="Bytes of values held")
    meter.create_observable_gauge(
        "cache.compression_ratio", [ratio("compression_ratio")], unit="1", description="raw/stored bytes"
    )
    meter.create_observable_gauge(
        "cache.backend.latency", [latency], unit="us", description="Backend operation latency percentiles"
    )
    meter.create_observable_gauge(
        "cache.degraded",
        [lambda _options: [metrics.Observation(1 if backend().degraded else 0)]],
        unit="1",
        description="1 while memory serves because Redis does not answer",
    )
    meter.create_observable_counter(
        "cache.failovers",
        [lambda _options: [metrics.Observation(backend().failovers)]],
        unit="{failover}",
        description="Times the cache fell back to memory",
    )

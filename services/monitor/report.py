"""Performance report over the last 1-24 hours.

- every series: min, mean, max and p95 over the period (p95 of the per-slot means: samples for a
  one-hour report, one-minute means beyond);
- alert events that fired or escalated in the period, by the level reached;
- the slowest RPC methods: per service and method, p95 and p99 are the 95th percentile over the
  period of the method's per-interval p95 and p99 (``rpc.server.latency.*``): the latency of a bad
  interval, not of the worst single call; calls and error rate are totals over the period.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from services.monitor.alerts import AlertEngine, AlertEvent, EventKind
from services.monitor.series import LabelSet, Series, SeriesStore, SeriesSummary
from services.runtime.errors import InvalidArgument

__all__ = ["MethodLatency", "Report", "build_report", "check_hours", "period_events"]

SLOWEST = 10


@dataclass(frozen=True)
class MethodLatency:
    """Latency and errors of one RPC method over the period."""

    service: str
    method: str
    p95_ms: float
    p99_ms: float
    calls: int
    error_rate: float


@dataclass(frozen=True)
class Report:
    """What GetReport returns."""

    start: float
    end: float
    series: list[SeriesSummary]
    alerts_by_level: dict[str, int]
    slowest: list[MethodLatency]


def check_hours(hours: int) -> int:
    """Report length: 1-24 hours (0 means 1)."""
    if hours == 0:
        return 1
    if not 1 <= hours <= 24:
        raise InvalidArgument(f"hours must be from 1 to 24, not {hours}", field="hours")
    return hours


def period_events(engine: AlertEngine, hours: int, now: float) -> list[AlertEvent]:
    """The alert events of the period (take them on the event loop: the engine keeps changing)."""
    return engine.events(since=now - hours * 3600, until=now, limit=10**9)


def build_report(
    store: SeriesStore, series: list[Series], events: list[AlertEvent], hours: int, now: float
) -> Report:
    """The report for the period of ``hours`` ending ``now`` over the given series and events.

    Pure computation over ring buffers: the caller may run it off the event loop with snapshots
    of the series list and of the events.
    """
    start = now - hours * 3600
    summaries = store.summaries(start, now, series)
    by_key: dict[tuple[str, LabelSet], SeriesSummary] = {
        (s.series.name, s.series.labels): s for s in summaries
    }
    slowest: list[MethodLatency] = []
    for (name, labels), p95 in by_key.items():
        if name != "rpc.server.latency.p95":
            continue
        p99 = by_key.get(("rpc.server.latency.p99", labels))
        calls = by_key.get(("rpc.server.calls", labels))
        errors = by_key.get(("rpc.server.errors", labels))
        total_calls = int(calls.total) if calls else 0
        attrs = dict(labels)
        slowest.append(
            MethodLatency(
                attrs.get("service", ""),
                attrs.get("method", ""),
                p95.p95,
                p99.p95 if p99 else p95.p95,
                total_calls,
                (errors.total / total_calls) if errors and total_calls else 0.0,
            )
        )
    slowest.sort(key=lambda m: -m.p95_ms)
    counts: Counter[str] = Counter()
    for event in events:
        if event.kind in (EventKind.FIRED, EventKind.ESCALATED):
            counts[event.alert.level.name] += 1
    return Report(start, now, summaries, dict(counts), slowest[:SLOWEST])

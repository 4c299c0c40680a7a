"""Application metrics received from the services: what each kind of OTLP metric becomes.

The OTLP receiver (``otlp.py``) turns protobuf into the plain points below; :class:`AppMetrics`
turns them into samples for the store:

- a gauge, or a sum that is not monotonic (in-flight requests, queue depth): stored as it is;
- a monotonic sum (a counter): ``<name>.rate``, per second; ``cache.hits`` with ``cache.misses``
  of the same labels (summed over ``cache.miss_reason``) also give ``cache.hit_ratio`` (%, hits
  per lookup in the export interval);
- a histogram: ``<name>.p50``, ``.p95``, ``.p99`` (in the histogram's unit) and ``<name>.count``
  (values recorded in the export interval);
- ``rpc.server.duration``, the histogram the suite's runtime records for every call: per service
  and method (status codes merged), ``rpc.server.latency.p50/.p95/.p99`` (ms), ``rpc.server.calls``
  and ``rpc.server.errors`` (calls in the export interval) and ``rpc.server.error_rate`` (%).
  Errors are the status codes OpenTelemetry's semantic conventions call server errors: UNKNOWN,
  DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.

Cumulative points (the SDK's default) become deltas against the previous point of the same series;
the first point of a series counts from its start time. The baselines this needs are capped (the
series limit), so memory stays bounded.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from services.monitor.histograms import ExplicitBuckets, ExponentialBuckets
from services.monitor.series import LabelSet

__all__ = [
    "RPC_ERROR_CODES",
    "AppMetrics",
    "AppSample",
    "HistogramPoint",
    "Kind",
    "MetricBatch",
    "NumberPoint",
]

RPC_DURATION = "rpc.server.duration"
_MISS_REASON = "cache.miss_reason"
RPC_ERROR_CODES = frozenset({2, 4, 12, 13, 14, 15})
_QUANTILES = ((".p50", 0.50), (".p95", 0.95), (".p99", 0.99))


class Kind(enum.Enum):
    """What an OTLP metric is."""

    GAUGE = "gauge"
    SUM = "sum"
    HISTOGRAM = "histogram"


@dataclass(slots=True)
class NumberPoint:
    """A gauge or sum point; times in seconds since the epoch (start 0 when not given)."""

    labels: LabelSet
    start: float
    time: float
    value: float


@dataclass(slots=True)
class HistogramPoint:
    """A histogram point with explicit or exponential buckets."""

    labels: LabelSet
    start: float
    time: float
    count: int
    total: float
    buckets: ExplicitBuckets | ExponentialBuckets


@dataclass
class MetricBatch:
    """One metric of one service from one Export call."""

    service: str
    name: str
    unit: str
    description: str
    kind: Kind
    monotonic: bool = False
    delta: bool = False
    points: list[NumberPoint] | list[HistogramPoint] = field(default_factory=list)


class AppSample(NamedTuple):
    """A sample for the store, with what describes its metric."""

    name: str
    labels: LabelSet
    value: float
    unit: str
    description: str


class _Baseline(NamedTuple):
    start: float
    time: float
    value: float
    calls: int
    buckets: ExplicitBuckets | ExponentialBuckets | None


class AppMetrics:
    """Converts metric batches into samples, keeping the baselines cumulative points need."""

    def __init__(self, baseline_limit: int) -> None:
        self._baselines: dict[tuple[str, str, LabelSet], _Baseline] = {}
        self._limit = baseline_limit
        self.untracked = 0  # points whose baseline could not be kept (limit reached)
        # per service, the deltas of cache.hits and cache.misses until both have arrived
        self._pending_cache: dict[str, dict[str, dict[LabelSet, float]]] = {}

    def ingest(self, batch: MetricBatch) -> list[AppSample]:
        """Samples derived from one batch."""
        if batch.kind is Kind.HISTOGRAM:
            return self._histograms(batch)
        if batch.kind is Kind.SUM and batch.monotonic:
            return self._counters(batch)
        return [
            AppSample(
                batch.name, _with_service(p.labels, batch.service), p.value, batch.unit, batch.description
            )
            for p in batch.points
            if isinstance(p, NumberPoint)
        ]

    def forget_before(self, time: float) -> int:
        """Drop baselines last updated before ``time``; returns how many."""
        stale = [k for k, b in self._baselines.items() if b.time < time]
        for key in stale:
            del self._baselines[key]
        return len(stale)

    def _remember(self, key: tuple[str, str, LabelSet], baseline: _Baseline) -> None:
        if key in self._baselines or len(self._baselines) < self._limit:
            self._baselines[key] = baseline
        else:
            self.untracked += 1

    def _counters(self, batch: MetricBatch) -> list[AppSample]:
        out: list[AppSample] = []
        deltas: dict[LabelSet, float] = {}
        unit = f"{batch.unit}/s" if batch.unit else "1/s"
        for p in batch.points:
            if not isinstance(p, NumberPoint):
                continue
            key = (batch.service, batch.name, p.labels)
            if batch.delta:
                delta, seconds = p.value, p.time - p.start
            else:
                before = self._baselines.get(key)
                self._remember(key, _Baseline(p.start, p.time, p.value, 0, None))
                if before is not None and before.start == p.start and p.value >= before.value:
                    delta, seconds = p.value - before.value, p.time - before.time
                else:  # first point, or the counter restarted: count from its start
                    delta, seconds = p.value, p.time - p.start if p.start else 0.0
            labels = _with_service(p.labels, batch.service)
            deltas[labels] = delta
            if seconds > 0:
                out.append(AppSample(f"{batch.name}.rate", labels, delta / seconds, unit, batch.description))
        if batch.name in ("cache.hits", "cache.misses") and (
            batch.service in self._pending_cache or len(self._pending_cache) < 64
        ):
            pending = self._pending_cache.setdefault(batch.service, {})
            pending[batch.name] = deltas
            out.extend(_hit_ratio(pending))
        return out

    def _delta(self, batch: MetricBatch, p: HistogramPoint) -> HistogramPoint:
        if batch.delta:
            return p
        key = (batch.service, batch.name, p.labels)
        before = self._baselines.get(key)
        self._remember(key, _Baseline(p.start, p.time, p.total, p.count, p.buckets))
        if before is not None and before.start == p.start and before.buckets is not None:
            buckets = _minus(p.buckets, before.buckets)
            if buckets is not None and p.count >= before.calls:
                return HistogramPoint(
                    p.labels, before.time, p.time, p.count - before.calls, p.total - before.value, buckets
                )
        return p

    def _histograms(self, batch: MetricBatch) -> list[AppSample]:
        groups: dict[LabelSet, list[HistogramPoint]] = {}
        errors: dict[LabelSet, int] = {}
        rpc = batch.name == RPC_DURATION
        for p in batch.points:
            if not isinstance(p, HistogramPoint):
                continue
            delta = self._delta(batch, p)
            if rpc:
                attrs = dict(p.labels)
                labels: LabelSet = (
                    ("method", f"/{attrs.get('rpc.service', '')}/{attrs.get('rpc.method', '')}"),
                    ("service", batch.service),
                )
                code = attrs.get("rpc.grpc.status_code", "0")
                if code.isdigit() and int(code) in RPC_ERROR_CODES:
                    errors[labels] = errors.get(labels, 0) + delta.count
            else:
                labels = _with_service(p.labels, batch.service)
            groups.setdefault(labels, []).append(delta)
        out: list[AppSample] = []
        prefix = "rpc.server.latency" if rpc else batch.name
        unit = batch.unit or "1"
        for labels, points in groups.items():
            merged = _merge(p.buckets for p in points)
            count = sum(p.count for p in points)
            if merged is not None and count > 0:
                for suffix, q in _QUANTILES:
                    out.append(
                        AppSample(prefix + suffix, labels, merged.quantile(q), unit, f"{q:.0%} quantile")
                    )
            if rpc:
                failed = errors.get(labels, 0)
                out.append(
                    AppSample("rpc.server.calls", labels, count, "{call}", "calls per export interval")
                )
                out.append(
                    AppSample("rpc.server.errors", labels, failed, "{call}", "server errors per interval")
                )
                if count > 0:
                    out.append(
                        AppSample(
                            "rpc.server.error_rate", labels, 100.0 * failed / count, "%", "calls failed"
                        )
                    )
            else:
                out.append(AppSample(f"{batch.name}.count", labels, count, "1", "values per export interval"))
        return out


def _hit_ratio(pending: dict[str, dict[LabelSet, float]]) -> list[AppSample]:
    """Hits per lookup (%) per namespace (label set), counting misses of every reason.

    ``cache.misses`` carries ``cache.miss_reason`` (absent, stale) that ``cache.hits`` has not, so
    misses are summed over it before they meet the hits of the same labels.
    """
    hits, misses = pending.get("cache.hits"), pending.get("cache.misses")
    if hits is None or misses is None:
        return []
    pending.clear()
    missed: dict[LabelSet, float] = {}
    for labels, count in misses.items():
        key = tuple(kv for kv in labels if kv[0] != _MISS_REASON)
        missed[key] = missed.get(key, 0.0) + count
    out = []
    for labels in sorted(hits.keys() | missed.keys()):
        hit = hits.get(labels, 0.0)
        total = hit + missed.get(labels, 0.0)
        if total > 0:
            out.append(
                AppSample("cache.hit_ratio", labels, 100.0 * hit / total, "%", "cache hits per lookup")
            )
    return out


def _with_service(labels: LabelSet, service: str) -> LabelSet:
    if not service or any(k == "service" for k, _ in labels):
        return labels
    return tuple(sorted((*labels, ("service", service))))


def _minus(
    now: ExplicitBuckets | ExponentialBuckets, before: ExplicitBuckets | ExponentialBuckets
) -> ExplicitBuckets | ExponentialBuckets | None:
    if isinstance(now, ExplicitBuckets) and isinstance(before, ExplicitBuckets):
        return now.minus(before)
    if isinstance(now, ExponentialBuckets) and isinstance(before, ExponentialBuckets):
        return now.minus(before)
    return None


def _merge(
    buckets: Iterable[ExplicitBuckets | ExponentialBuckets],
) -> ExplicitBuckets | ExponentialBuckets | None:
    merged: ExplicitBuckets | ExponentialBuckets | None = None
    for b in buckets:
        if merged is None:
            merged = ExplicitBuckets(b.bounds, list(b.counts)) if isinstance(b, ExplicitBuckets) else b
        elif isinstance(merged, ExplicitBuckets) and isinstance(b, ExplicitBuckets):
            merged.add(b)
        elif isinstance(merged, ExponentialBuckets) and isinstance(b, ExponentialBuckets):
            merged = merged.merged(b)
    return merged

"""OTLP points become series: quantiles from buckets, deltas of cumulative points, RPC error rates,
counter rates and the cache hit ratio."""

from __future__ import annotations

import math

import pytest

from services.monitor.app_metrics import (
    AppMetrics,
    AppSample,
    HistogramPoint,
    Kind,
    MetricBatch,
    NumberPoint,
)
from services.monitor.histograms import ExplicitBuckets, ExponentialBuckets

BOUNDS = (1.0, 2.0, 5.0, 10.0)


def _rpc_point(
    method: str, code: int, counts: list[int], start: float = 1.0, time: float = 10.0
) -> HistogramPoint:
    labels = tuple(
        sorted({"rpc.service": "svc.Cache", "rpc.method": method, "rpc.grpc.status_code": str(code)}.items())
    )
    return HistogramPoint(labels, start, time, sum(counts), 0.0, ExplicitBuckets(BOUNDS, counts))


def _values(samples: list) -> dict[tuple[str, str], float]:  # type: ignore[type-arg]
    return {(s.name, dict(s.labels).get("method", "")): s.value for s in samples}


def test_explicit_quantile_interpolates_inside_the_bucket() -> None:
    buckets = ExplicitBuckets(BOUNDS, [0, 10, 10, 0, 0])
    assert buckets.quantile(0.5) == pytest.approx(2.0)
    assert buckets.quantile(0.75) == pytest.approx(3.5)
    assert math.isnan(ExplicitBuckets(BOUNDS, [0] * 5).quantile(0.5))
    assert ExplicitBuckets(BOUNDS, [0, 0, 0, 0, 4]).quantile(0.99) == 10.0  # above the last bound


def test_exponential_quantile_is_within_the_bucket_width() -> None:
    scale = 3
    base = 2 ** (2**-scale)
    values = [0.3 * 1.07**i for i in range(200)]
    counts: dict[int, int] = {}
    for v in values:
        index = math.ceil(math.log(v, base)) - 1
        counts[index] = counts.get(index, 0) + 1
    low = min(counts)
    buckets = ExponentialBuckets(scale, 0, low, [counts.get(i, 0) for i in range(low, max(counts) + 1)])
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert buckets.quantile(q) == pytest.approx(exact, rel=base - 1)
    coarse = buckets.downscaled(1)
    assert coarse.total == 200
    assert coarse.quantile(0.5) == pytest.approx(buckets.quantile(0.5), rel=2**0.5 - 1)


def test_exponential_deltas_and_merges_align_offsets_and_scales() -> None:
    earlier = ExponentialBuckets(2, 1, 4, [1, 2, 3])
    later = ExponentialBuckets(2, 3, 3, [5, 1, 4, 3, 7])
    delta = later.minus(earlier)
    assert delta is not None
    assert (delta.scale, delta.zero, delta.offset, delta.counts) == (2, 2, 3, [5, 0, 2, 0, 7])
    coarse = later.minus(ExponentialBuckets(1, 0, 2, [5]))  # buckets 4, 5 (1 + 4) at scale 2: bucket 2 at 1
    assert coarse is not None
    assert (coarse.scale, coarse.offset, coarse.counts) == (1, 1, [5, 0, 10])
    assert later.minus(ExponentialBuckets(2, 0, 3, [6])) is None  # a count went down: not comparable
    merged = earlier.merged(ExponentialBuckets(2, 0, 8, [1]))
    assert (merged.offset, merged.counts, merged.total) == (4, [1, 2, 3, 0, 1], 8)


def test_rpc_duration_gives_latency_calls_and_error_rate_per_method_from_cumulative_deltas() -> None:
    app = AppMetrics(100)
    first = MetricBatch(
        "cache",
        "rpc.server.duration",
        "ms",
        "",
        Kind.HISTOGRAM,
        points=[_rpc_point("Get", 0, [10, 0, 0, 0, 0]), _rpc_point("Get", 14, [0, 0, 0, 0, 0])],
    )
    got = _values(app.ingest(first))
    assert got[("rpc.server.calls", "/svc.Cache/Get")] == 10
    assert got[("rpc.server.error_rate", "/svc.Cache/Get")] == 0.0
    second = MetricBatch(
        "cache",
        "rpc.server.duration",
        "ms",
        "",
        Kind.HISTOGRAM,
        points=[
            _rpc_point("Get", 0, [10, 0, 6, 0, 0], time=15.0),  # 6 more calls, in (2, 5]
            _rpc_point("Get", 14, [0, 0, 0, 2, 0], time=15.0),  # 2 UNAVAILABLE, in (5, 10]
        ],
    )
    samples = app.ingest(second)
    got = _values(samples)
    assert got[("rpc.server.calls", "/svc.Cache/Get")] == 8
    assert got[("rpc.server.errors", "/svc.Cache/Get")] == 2
    assert got[("rpc.server.error_rate", "/svc.Cache/Get")] == 25.0
    assert 2.0 < got[("rpc.server.latency.p50", "/svc.Cache/Get")] <= 5.0
    assert 5.0 < got[("rpc.server.latency.p99", "/svc.Cache/Get")] <= 10.0
    assert {dict(s.labels)["service"] for s in samples} == {"cache"}


def test_client_errors_are_not_server_errors() -> None:
    app = AppMetrics(100)
    batch = MetricBatch(
        "cache",
        "rpc.server.duration",
        "ms",
        "",
        Kind.HISTOGRAM,
        points=[_rpc_point("Get", 3, [4, 0, 0, 0, 0]), _rpc_point("Get", 13, [1, 0, 0, 0, 0])],
    )
    got = _values(app.ingest(batch))
    assert got[("rpc.server.error_rate", "/svc.Cache/Get")] == 20.0  # INTERNAL counts, INVALID_ARGUMENT not


def test_a_restarted_process_counts_from_its_new_start() -> None:
    app = AppMetrics(100)
    app.ingest(MetricBatch("c", "h", "s", "", Kind.HISTOGRAM, points=[_rpc_point("X", 0, [50, 0, 0, 0, 0])]))
    restarted = _rpc_point("X", 0, [0, 3, 0, 0, 0], start=20.0, time=25.0)
    got = {
        s.name: s.value
        for s in app.ingest(MetricBatch("c", "h", "s", "", Kind.HISTOGRAM, points=[restarted]))
    }
    assert got["h.count"] == 3
    assert 1.0 < got["h.p50"] <= 2.0


def test_counter_becomes_a_rate_and_hits_with_misses_of_every_reason_a_hit_ratio() -> None:
    # The cache's shape: hits per namespace, misses per namespace and reason.
    app = AppMetrics(100)
    ns = (("cache.namespace", "thumbnail"),)

    def export(time: float, hits: float, absent: float, stale: float) -> list[AppSample]:
        by_reason = [
            NumberPoint((*ns, ("cache.miss_reason", reason)), 0.0, time, value)
            for reason, value in (("absent", absent), ("stale", stale))
        ]
        return [
            *app.ingest(
                MetricBatch(
                    "cache", "cache.hits", "1", "", Kind.SUM, True, points=[NumberPoint(ns, 0.0, time, hits)]
                )
            ),
            *app.ingest(MetricBatch("cache", "cache.misses", "1", "", Kind.SUM, True, points=by_reason)),
        ]

    export(10.0, 10.0, 0.0, 0.0)
    out = export(20.0, 40.0, 4.0, 6.0)
    got = {(s.name, dict(s.labels).get("cache.miss_reason", "")): s.value for s in out}
    assert got[("cache.hits.rate", "")] == 3.0
    assert (got[("cache.misses.rate", "absent")], got[("cache.misses.rate", "stale")]) == (0.4, 0.6)
    ratios = [(s.labels, s.value, s.unit) for s in out if s.name == "cache.hit_ratio"]
    assert ratios == [((("cache.namespace", "thumbnail"), ("service", "cache")), 75.0, "%")]


def test_misses_without_hits_give_a_zero_hit_ratio_and_no_lookups_none() -> None:
    app = AppMetrics(100)
    a, b = (("cache.namespace", "a"),), (("cache.namespace", "b"),)
    app.ingest(
        MetricBatch(
            "cache",
            "cache.hits",
            "1",
            "",
            Kind.SUM,
            True,
            delta=True,
            points=[NumberPoint(a, 0.0, 5.0, 0.0), NumberPoint(b, 0.0, 5.0, 0.0)],
        )
    )
    stale = (("cache.miss_reason", "stale"),)
    out = app.ingest(
        MetricBatch(
            "cache",
            "cache.misses",
            "1",
            "",
            Kind.SUM,
            True,
            delta=True,
            points=[NumberPoint((*a, *stale), 0.0, 5.0, 2.0), NumberPoint((*b, *stale), 0.0, 5.0, 0.0)],
        )
    )
    assert [(dict(s.labels)["cache.namespace"], s.value) for s in out if s.name == "cache.hit_ratio"] == [
        ("a", 0.0)
    ]


def test_gauges_and_updown_sums_are_stored_as_they_are() -> None:
    app = AppMetrics(100)
    out = app.ingest(
        MetricBatch(
            "processing", "processing.active", "1", "", Kind.SUM, False, points=[NumberPoint((), 0, 5, 3.0)]
        )
    )
    assert [(s.name, s.labels, s.value) for s in out] == [
        ("processing.active", (("service", "processing"),), 3.0)
    ]


def test_baselines_are_capped() -> None:
    app = AppMetrics(2)
    points = [NumberPoint((("k", str(i)),), 0.0, 10.0, 1.0) for i in range(5)]
    app.ingest(MetricBatch("s", "c", "1", "", Kind.SUM, True, points=points))
    assert app.untracked == 3
    assert app.forget_before(11.0) == 2

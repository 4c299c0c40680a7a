"""History ring buffers: exact aggregation per step, fixed memory, the series limit, clear errors."""

from __future__ import annotations

import pytest

from services.monitor.series import SeriesStore, SlotRing
from services.runtime.errors import InvalidArgument, NotFound

T0 = 1_800_000_000.0  # a multiple of 60 and of 5


def test_ring_aggregates_samples_per_slot_and_per_step() -> None:
    ring = SlotRing(5.0, 12)
    for i, value in enumerate([1.0, 3.0, 2.0, 10.0, 4.0, 6.0]):
        ring.add(T0 + i * 5, value)
    ring.add(T0 + 1, 5.0)  # second sample in the first slot
    points = ring.points(T0 - 1, T0 + 60, 10.0)
    assert [(p.time - T0, p.min, p.max, p.samples) for p in points] == [
        (0, 1.0, 5.0, 3),
        (10, 2.0, 10.0, 2),
        (20, 4.0, 6.0, 2),
    ]
    assert points[0].avg == pytest.approx((1 + 5 + 3) / 3)


def test_ring_forgets_what_falls_out_and_refuses_older_samples() -> None:
    ring = SlotRing(5.0, 4)  # 20 seconds
    ring.add(T0, 1.0)
    ring.add(T0 + 100, 2.0)  # far ahead: everything before is gone
    assert ring.add(T0 + 75, 9.0) is False
    assert [p.avg for p in ring.points(T0 - 100, T0 + 200, 5.0)] == [2.0]
    ring.add(T0 + 105, 3.0)
    ring.add(T0 + 90, 4.0)  # still inside the ring
    assert [p.avg for p in ring.points(T0, T0 + 200, 5.0)] == [4.0, 2.0, 3.0]


def test_history_uses_full_resolution_for_an_hour_and_rollups_beyond() -> None:
    store = SeriesStore(5.0, 10)
    for i in range(0, 7200, 5):  # two hours at 5 s
        store.record("cpu", (), float(i % 60), T0 + i)
    now = T0 + 7195
    step, found = store.history("cpu", {}, 600, None, now)
    assert step == 5.0
    assert len(found[0][1]) == 120
    step, found = store.history("cpu", {}, 7200, None, now)
    assert step == 60.0
    points = found[0][1]
    assert len(points) == 120
    assert (points[0].min, points[0].max, points[0].samples) == (0.0, 55.0, 12)
    step, _ = store.history("cpu", {}, 600, 12, now)
    assert step == 15.0  # rounded up to a whole number of 5 s slots


@pytest.mark.parametrize(
    ("window", "step", "field", "text"),
    [
        (0.0, None, "window", "window must be more than 0 and at most 24h"),
        (90_000.0, None, "window", "at most 24h"),
        (600.0, 1.0, "step", "step must be at least 5s for a window up to 1h"),
        (7200.0, 30.0, "step", "step must be at least 60s for a window beyond 1h"),
        (600.0, 900.0, "step", "must not exceed the window"),
    ],
)
def test_history_refuses_bad_window_or_step(window: float, step: float | None, field: str, text: str) -> None:
    store = SeriesStore(5.0, 10)
    store.record("cpu", (), 1.0, T0)
    with pytest.raises(InvalidArgument) as caught:
        store.history("cpu", {}, window, step, T0)
    assert caught.value.field == field
    assert text in caught.value.message


def test_unknown_metric_is_not_found_and_labels_filter_series() -> None:
    store = SeriesStore(5.0, 10)
    store.record("rpc", (("method", "Get"), ("service", "cache")), 1.0, T0)
    store.record("rpc", (("method", "Set"), ("service", "cache")), 2.0, T0)
    with pytest.raises(NotFound, match="no metric named 'nope'"):
        store.history("nope", {}, 60, None, T0)
    _, found = store.history("rpc", {"method": "Set"}, 60, None, T0)
    assert [s.label_map["method"] for s, _ in found] == ["Set"]


def test_series_limit_drops_new_series_and_counts_them_memory_is_fixed() -> None:
    store = SeriesStore(5.0, 3)
    assert store.bytes_per_series == (720 + 1440) * 28
    assert store.memory_bound == 3 * store.bytes_per_series
    for i in range(5):
        store.record("m", (("i", str(i)),), 1.0, T0)
    assert store.count == 3
    assert store.dropped_samples == 2
    assert store.record("m", (("i", "0"),), 2.0, T0 + 5) is not None  # existing series still take samples
    assert store.record("m", (("i", "9"),), float("nan"), T0) is None


def test_idle_series_are_evicted_after_24_hours_making_room() -> None:
    store = SeriesStore(5.0, 2)
    store.record("a", (), 1.0, T0)
    store.record("b", (), 1.0, T0 + 80_000)
    assert store.record("c", (), 1.0, T0 + 80_000) is None
    assert store.evict_idle(T0 + 86_401) == 1
    assert store.record("c", (), 1.0, T0 + 86_401) is not None
    assert sorted(store.metrics) == ["b", "c"]


def test_summaries_give_min_avg_max_p95_and_total() -> None:
    store = SeriesStore(5.0, 10)
    series = None
    for i in range(100):
        series = store.record("lat", (), float(i + 1), T0 + i * 5)
    assert series is not None
    (summary,) = store.summaries(T0 - 5, T0 + 500, [series])
    assert (summary.min, summary.max, summary.count, summary.total) == (1.0, 100.0, 100, 5050.0)
    assert summary.avg == pytest.approx(50.5)
    assert summary.p95 == 95.0

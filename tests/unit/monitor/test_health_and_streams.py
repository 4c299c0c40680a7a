"""Health score arithmetic, and the streams' bounds: a slow alert consumer drops and resyncs, a
slow metrics consumer has its missed ticks counted."""

from __future__ import annotations

import asyncio

import pytest

from services.monitor.alerts import Alert, AlertEvent, EventKind, Level
from services.monitor.health import ComponentState, HealthChecker, score, status_word
from services.monitor.streams import AlertFeed, Pacer


def _component(name: str, serving: bool) -> ComponentState:
    return ComponentState(name, "127.0.0.1:1", serving, "SERVING" if serving else "UNAVAILABLE", 0.001, 0.0)


def _alert(level: Level, i: int = 0) -> Alert:
    return Alert(f"a{i}", "r", "m", (), level, 1.0, 1.0, 0.0, 0.0, "")


def test_score_deducts_for_components_down_and_alerts_and_says_why() -> None:
    report = score(
        [_component("cache", True), _component("batch", False)],
        [_alert(Level.WARNING, 1), _alert(Level.WARNING, 2), _alert(Level.INFO)],
    )
    assert report.score == 100 - 30 - 20 - 2
    assert report.status == "poor"
    assert report.deductions == (
        "-30 batch not serving (UNAVAILABLE)",
        "-20 2 WARNING alerts",
        "-2 1 INFO alert",
    )
    assert report.active_alerts == {"INFO": 1, "WARNING": 2}
    assert score([_component(n, False) for n in "abcd"], []).score == 0.0


@pytest.mark.parametrize(
    ("value", "word"),
    [
        (100, "excellent"),
        (90, "excellent"),
        (89, "good"),
        (75, "good"),
        (74, "fair"),
        (25, "poor"),
        (24, "critical"),
    ],
)
def test_status_words(value: float, word: str) -> None:
    assert status_word(value) == word


class _SlowProbe:
    name = "slow"
    target = "nowhere"

    async def check(self, deadline: float) -> tuple[bool, str]:
        await asyncio.sleep(10)
        return True, "SERVING"

    async def close(self) -> None:
        pass


async def test_a_probe_that_hangs_is_not_serving_after_the_deadline() -> None:
    checker = HealthChecker([_SlowProbe()], timeout=0.05)
    (state,) = await checker.check(0.0)
    assert not state.serving
    assert "no answer within 0.05s" in state.detail


def _event(seq: int, level: Level = Level.WARNING) -> AlertEvent:
    return AlertEvent(seq, float(seq), EventKind.FIRED, _alert(level, seq), Level.NONE)


async def test_a_full_feed_drops_counts_then_resends_the_active_set() -> None:
    active = [_event(100, Level.CRITICAL), _event(101)]
    feed = AlertFeed(3, Level.NONE, lambda: active)
    for seq in range(1, 11):
        feed.publish(_event(seq))
    assert feed.dropped_pending == 7
    first = await feed.next()
    assert [(e.sequence, d) for e, d in first] == [(1, 0), (2, 0), (3, 0)]
    resync = await feed.next()
    assert [(e.sequence, d) for e, d in resync] == [(100, 7), (101, 0)]
    feed.publish(_event(11))
    assert [(e.sequence, d) for e, d in await feed.next()] == [(11, 0)]


async def test_a_feed_filters_by_level() -> None:
    feed = AlertFeed(10, Level.CRITICAL, list)
    feed.publish(_event(1, Level.WARNING))
    feed.publish(_event(2, Level.EMERGENCY))
    assert [e.sequence for e, _ in await feed.next()] == [2]


async def test_pacer_counts_ticks_missed_by_a_late_caller() -> None:
    now = [0.0]
    pacer = Pacer(0.01, clock=lambda: now[0])
    assert await pacer.wait() == 0
    now[0] = 0.055  # the caller spent 5.5 intervals sending
    assert await pacer.wait() == 4
    assert await pacer.wait() == 0

"""The alert engine, driven by a clock the test moves: hold, escalation, hysteresis, no duplicates."""

from __future__ import annotations

from collections.abc import Sequence

from services.monitor.alerts import AlertEngine, AlertEvent, EventKind, Level, Rule

RULE = Rule(
    "temp",
    "room.temperature",
    {Level.WARNING: 50, Level.CRITICAL: 80, Level.EMERGENCY: 95},
    hold=10,
    hysteresis=5,
)


def _run(engine: AlertEngine, values: Sequence[float], step: float = 5.0, labels: tuple = ()) -> list[tuple]:  # type: ignore[type-arg]
    events: list[AlertEvent] = []
    for i, value in enumerate(values):
        events += engine.observe("room.temperature", labels, value, 1000.0 + i * step)
    return [(e.kind, e.alert.level, e.previous, e.time - 1000.0) for e in events]


def test_the_whole_life_of_an_alert() -> None:
    engine = AlertEngine([RULE])
    #        hold W.......  no dup  hold C........  band   de-esc  band  resolve
    values = [60, 60, 60, 62, 90, 90, 90, 77, 76, 60, 47, 46, 40]
    assert _run(engine, values) == [
        (EventKind.FIRED, Level.WARNING, Level.NONE, 10.0),
        (EventKind.ESCALATED, Level.CRITICAL, Level.WARNING, 30.0),
        (EventKind.DEESCALATED, Level.WARNING, Level.CRITICAL, 45.0),
        (EventKind.RESOLVED, Level.NONE, Level.WARNING, 60.0),
    ]
    assert engine.active() == []
    events = engine.events()
    assert [e.sequence for e in events] == [4, 3, 2, 1]
    assert "below 45" in events[0].alert.message


def test_a_breach_shorter_than_the_hold_fires_nothing() -> None:
    engine = AlertEngine([RULE])
    assert _run(engine, [60, 60, 40, 60, 60, 40, 99, 99, 10]) == []


def test_a_jump_straight_to_emergency_fires_at_the_level_held_longest_enough() -> None:
    engine = AlertEngine([RULE])
    assert _run(engine, [99, 99, 99]) == [(EventKind.FIRED, Level.EMERGENCY, Level.NONE, 10.0)]
    (alert,) = engine.active()
    assert alert.threshold == 95
    assert alert.value == 99
    assert "EMERGENCY threshold 95" in alert.message


def test_dropping_far_below_resolves_at_once_from_any_level() -> None:
    engine = AlertEngine([RULE])
    assert [k for k, *_ in _run(engine, [99, 99, 99, 0])] == [EventKind.FIRED, EventKind.RESOLVED]


def test_rules_with_labels_watch_only_matching_series_and_each_series_alerts_alone() -> None:
    rule = Rule("t", "room.temperature", {Level.INFO: 1}, labels=(("room", "a"),))
    engine = AlertEngine([rule])
    a = _run(engine, [5], labels=(("floor", "1"), ("room", "a")))
    b = _run(engine, [5], labels=(("room", "b"),))
    assert [k for k, *_ in a] == [EventKind.FIRED]
    assert b == []
    assert engine.active()[0].id == "t{floor=1,room=a}"


def test_a_silent_series_resolves_after_stale_after_and_listeners_see_every_event() -> None:
    seen: list[AlertEvent] = []
    engine = AlertEngine([Rule("t", "room.temperature", {Level.WARNING: 1})], stale_after=60)
    engine.listeners.append(seen.append)
    engine.observe("room.temperature", (), 5, 0.0)
    assert engine.sweep(30.0) == []
    (event,) = engine.sweep(61.0)
    assert event.kind is EventKind.RESOLVED
    assert "no data for 60s" in event.alert.message
    assert [e.kind for e in seen] == [EventKind.FIRED, EventKind.RESOLVED]


def test_events_filter_by_level_time_and_page() -> None:
    engine = AlertEngine([Rule("t", "room.temperature", {Level.INFO: 1, Level.CRITICAL: 10})])
    for i, value in enumerate([2, 20, 2, 0, 2]):
        engine.observe("room.temperature", (), value, float(i))
    assert [e.sequence for e in engine.events()] == [5, 4, 3, 2, 1]
    assert [e.sequence for e in engine.events(min_level=Level.CRITICAL)] == [3, 2]
    assert [e.sequence for e in engine.events(since=2.0)] == [5, 4, 3]
    assert [e.sequence for e in engine.events(before_sequence=4, limit=2)] == [3, 2]

"""Alert rules and the engine that turns samples into alert events.

A rule watches one metric (optionally only series with given labels) with up to four thresholds,
INFO < WARNING < CRITICAL < EMERGENCY; a value at or above a threshold breaches that level.

- **Hold**: a level counts only once its threshold has been breached without a break for ``hold``
  seconds; then the alert FIRES at that level, or ESCALATES to it when already active lower.
- **Hysteresis**: an active alert keeps its level while the value stays at or above its threshold
  minus ``hysteresis``; below that it DE-ESCALATES to the highest level whose threshold minus the
  margin the value still reaches, or RESOLVES when none. Both happen at once (no hold).
- **No duplicates**: an event is emitted only when the level changes; a breach that continues
  only updates the alert's value.
- **No data**: an alert whose series sent nothing for ``stale_after`` seconds resolves, saying so.

The engine keeps the active alerts and the last ``history_limit`` events (sequence-numbered);
listeners get every event as it happens.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from services.monitor.series import LabelSet
from services.runtime.errors import InvalidArgument

__all__ = ["Alert", "AlertEngine", "AlertEvent", "EventKind", "Level", "Rule"]


class Level(enum.IntEnum):
    """Alert levels, ordered; NONE means no alert."""

    NONE = 0
    INFO = 1
    WARNING = 2
    CRITICAL = 3
    EMERGENCY = 4


class EventKind(enum.Enum):
    """What happened to an alert."""

    FIRED = 1
    ESCALATED = 2
    DEESCALATED = 3
    RESOLVED = 4


@dataclass(frozen=True)
class Rule:
    """One alert rule. ``thresholds`` holds only the levels in use, increasing with the level."""

    name: str
    metric: str
    thresholds: Mapping[Level, float]
    hold: float = 0.0
    hysteresis: float = 0.0
    labels: LabelSet = ()
    description: str = ""

    def matches(self, labels: LabelSet) -> bool:
        """Whether a series with these labels is watched by the rule."""
        return not self.labels or set(self.labels) <= set(labels)

    def breached(self, value: float) -> list[Level]:
        """The levels whose threshold the value reaches."""
        return [level for level, threshold in self.thresholds.items() if value >= threshold]

    def kept(self, value: float, current: Level) -> Level:
        """The highest level up to ``current`` whose threshold minus the margin the value reaches."""
        best = Level.NONE
        for level, threshold in self.thresholds.items():
            if level <= current and value >= threshold - self.hysteresis and level > best:
                best = level
        return best


@dataclass
class Alert:
    """An alert on one series."""

    id: str
    rule: str
    metric: str
    labels: LabelSet
    level: Level
    value: float
    threshold: float
    since: float
    changed_at: float
    message: str


@dataclass(frozen=True)
class AlertEvent:
    """A change of an alert: the alert after it and the level before it."""

    sequence: int
    time: float
    kind: EventKind
    alert: Alert
    previous: Level


@dataclass
class _State:
    rule: Rule
    alert_id: str
    breach_since: dict[Level, float] = field(default_factory=dict)
    alert: Alert | None = None
    last_seen: float = 0.0


def _series_text(metric: str, labels: LabelSet) -> str:
    if not labels:
        return metric
    return metric + "{" + ",".join(f"{k}={v}" for k, v in labels) + "}"


class AlertEngine:
    """Evaluates rules on every sample of the series they watch."""

    def __init__(self, rules: Iterable[Rule], *, history_limit: int = 10_000, stale_after: float = 300.0):
        self.rules = tuple(rules)
        self._by_metric: dict[str, list[Rule]] = {}
        for rule in self.rules:
            self._by_metric.setdefault(rule.metric, []).append(rule)
        self._states: dict[tuple[str, LabelSet], _State] = {}
        self._events: deque[AlertEvent] = deque(maxlen=history_limit)
        self._sequence = 0
        self._stale_after = stale_after
        self.listeners: list[Callable[[AlertEvent], None]] = []

    def watches(self, metric: str) -> bool:
        """Whether any rule watches this metric (a cheap test before :meth:`observe`)."""
        return metric in self._by_metric

    def observe(self, metric: str, labels: LabelSet, value: float, now: float) -> list[AlertEvent]:
        """Evaluate the rules of ``metric`` on one sample; returns the events it caused."""
        events: list[AlertEvent] = []
        for rule in self._by_metric.get(metric, ()):
            if not rule.matches(labels):
                continue
            key = (rule.name, labels)
            state = self._states.get(key)
            if state is None:
                state = _State(rule, _series_text(rule.name, labels))
                self._states[key] = state
            state.last_seen = now
            event = self._evaluate(state, labels, value, now)
            if event is not None:
                events.append(event)
        return events

    def _evaluate(self, state: _State, labels: LabelSet, value: float, now: float) -> AlertEvent | None:
        rule = state.rule
        breached = rule.breached(value)
        for level in list(state.breach_since):
            if level not in breached:
                del state.breach_since[level]
        for level in breached:
            state.breach_since.setdefault(level, now)
        held = max(
            (lvl for lvl, since in state.breach_since.items() if now - since >= rule.hold),
            default=Level.NONE,
        )
        alert = state.alert
        if alert is None:
            if held == Level.NONE:
                return None
            alert = Alert(
                state.alert_id,
                rule.name,
                rule.metric,
                labels,
                held,
                value,
                rule.thresholds[held],
                now,
                now,
                "",
            )
            state.alert = alert
            return self._emit(EventKind.FIRED, alert, Level.NONE, now)
        alert.value = value
        current = alert.level
        if held > current:
            return self._change(state, EventKind.ESCALATED, held, now)
        kept = rule.kept(value, current)
        if kept == Level.NONE:
            return self._change(state, EventKind.RESOLVED, Level.NONE, now)
        if kept < current:
            return self._change(state, EventKind.DEESCALATED, kept, now)
        return None

    def _change(self, state: _State, kind: EventKind, level: Level, now: float, note: str = "") -> AlertEvent:
        alert = state.alert
        assert alert is not None  # noqa: S101 (narrows a type: an invariant of the code above, not a check of input)
        previous = alert.level
        alert.level = level
        alert.changed_at = now
        if level == Level.NONE:
            alert.threshold = state.rule.thresholds[previous] - state.rule.hysteresis
            state.alert = None
        else:
            alert.threshold = state.rule.thresholds[level]
        return self._emit(kind, alert, previous, now, note)

    def _emit(self, kind: EventKind, alert: Alert, previous: Level, now: float, note: str = "") -> AlertEvent:
        series = _series_text(alert.metric, alert.labels)
        if kind is EventKind.RESOLVED:
            alert.message = note or (
                f"{series} is {alert.value:g}, below {alert.threshold:g} "
                f"({previous.name} threshold minus hysteresis): resolved"
            )
        else:
            alert.message = (
                f"{series} is {alert.value:g}, at or above the {alert.level.name} "
                f"threshold {alert.threshold:g} ({alert.rule})"
            )
        self._sequence += 1
        event = AlertEvent(self._sequence, now, kind, replace(alert), previous)
        self._events.append(event)
        for listener in self.listeners:
            listener(event)
        return event

    def sweep(self, now: float) -> list[AlertEvent]:
        """Resolve alerts whose series went silent; forget idle series. Returns the events."""
        events = []
        for key, state in list(self._states.items()):
            if now - state.last_seen < self._stale_after:
                continue
            if state.alert is not None:
                silent = f"no data for {self._stale_after:g}s"
                note = f"{_series_text(state.rule.metric, state.alert.labels)}: {silent}: resolved"
                events.append(self._change(state, EventKind.RESOLVED, Level.NONE, now, note))
            del self._states[key]
        return events

    def active(self, min_level: Level = Level.NONE) -> list[Alert]:
        """Active alerts at or above ``min_level``, most severe first, then oldest first."""
        found = [s.alert for s in self._states.values() if s.alert is not None and s.alert.level >= min_level]
        return sorted((replace(a) for a in found), key=lambda a: (-a.level, a.since, a.id))

    def last_event_of(self, alert_id: str) -> AlertEvent | None:
        """The latest event of an alert still held in the history."""
        for event in reversed(self._events):
            if event.alert.id == alert_id:
                return event
        return None

    @property
    def sequence(self) -> int:
        """Sequence number of the latest event (0 before any)."""
        return self._sequence

    def events(
        self,
        *,
        since: float = 0.0,
        until: float | None = None,
        min_level: Level = Level.NONE,
        before_sequence: int | None = None,
        limit: int = 100,
    ) -> list[AlertEvent]:
        """Events newest first, filtered by time, level (the alert's or the previous) and sequence."""
        out: list[AlertEvent] = []
        for event in reversed(self._events):
            if before_sequence is not None and event.sequence >= before_sequence:
                continue
            if event.time < since:
                break
            if until is not None and event.time > until:
                continue
            if max(event.alert.level, event.previous) < min_level:
                continue
            out.append(event)
            if len(out) >= limit:
                break
        return out


def page_size(value: int) -> int:
    """A ListAlertEvents page size: 0 means 100; 1-1000 otherwise."""
    if value == 0:
        return 100
    if not 1 <= value <= 1000:
        raise InvalidArgument(f"page_size must be from 1 to 1000, not {value}", field="page_size")
    return value

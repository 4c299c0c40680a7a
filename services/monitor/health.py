"""The suite's health score: 0-100 with a status word, from its components and its active alerts.

Start at 100 and deduct:

- 30 for each component (a suite process over grpc.health.v1, or Redis) that is not serving;
- per active alert: 2 for INFO, 10 for WARNING, 20 for CRITICAL, 40 for EMERGENCY.

The score is clamped to 0-100: 90-100 excellent, 75-89 good, 50-74 fair, 25-49 poor, below 25
critical. Every deduction is listed in words, so the score explains itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.monitor.alerts import Alert, Level

__all__ = [
    "ALERT_PENALTY",
    "COMPONENT_PENALTY",
    "ComponentState",
    "HealthChecker",
    "HealthReport",
    "Probe",
    "score",
    "status_word",
]

COMPONENT_PENALTY = 30.0
ALERT_PENALTY = {Level.INFO: 2.0, Level.WARNING: 10.0, Level.CRITICAL: 20.0, Level.EMERGENCY: 40.0}


@dataclass(frozen=True)
class ComponentState:
    """The latest check of one component."""

    name: str
    target: str
    serving: bool
    detail: str
    latency: float
    checked_at: float


@dataclass(frozen=True)
class HealthReport:
    """A score, its status word, each component, active alerts by level, and the reasons."""

    score: float
    status: str
    components: tuple[ComponentState, ...]
    active_alerts: dict[str, int]
    deductions: tuple[str, ...]


def status_word(value: float) -> str:
    """excellent / good / fair / poor / critical for a score."""
    for floor, word in ((90, "excellent"), (75, "good"), (50, "fair"), (25, "poor")):
        if value >= floor:
            return word
    return "critical"


def score(components: Sequence[ComponentState], alerts: Iterable[Alert]) -> HealthReport:
    """The health report for these component states and active alerts."""
    deductions: list[str] = []
    total = 0.0
    for c in components:
        if not c.serving:
            total += COMPONENT_PENALTY
            deductions.append(f"-{COMPONENT_PENALTY:g} {c.name} not serving ({c.detail})")
    by_level = Counter(a.level for a in alerts)
    for level in sorted(by_level, reverse=True):
        n = by_level[level]
        cost = ALERT_PENALTY[level] * n
        total += cost
        deductions.append(f"-{cost:g} {n} {level.name} alert{'s' if n > 1 else ''}")
    value = max(0.0, 100.0 - total)
    return HealthReport(
        value,
        status_word(value),
        tuple(components),
        {level.name: n for level, n in sorted(by_level.items())},
        tuple(deductions),
    )


class Probe(Protocol):
    """Checks one component; never raises (a failure is a state that is not serving)."""

    name: str
    target: str

    async def check(self, deadline: float) -> tuple[bool, str]:
        """(serving, detail) within ``deadline`` seconds."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class HealthChecker:
    """Checks every component at once and keeps the latest states."""

    def __init__(self, probes: Sequence[Probe], timeout: float) -> None:
        self.probes = tuple(probes)
        self.timeout = timeout
        self.states: tuple[ComponentState, ...] = ()

    async def check(self, now: float) -> tuple[ComponentState, ...]:
        """Run every probe concurrently; returns (and keeps) the states, in probe order."""

        async def one(probe: Probe) -> ComponentState:
            started = time.perf_counter()
            try:
                serving, detail = await asyncio.wait_for(probe.check(self.timeout), self.timeout + 0.5)
            except TimeoutError:
                serving, detail = False, f"no answer within {self.timeout:g}s"
            return ComponentState(
                probe.name, probe.target, serving, detail, time.perf_counter() - started, now
            )

        self.states = tuple(await asyncio.gather(*(one(p) for p in self.probes)))
        return self.states

    async def close(self) -> None:
        """Close every probe."""
        for probe in self.probes:
            await probe.close()

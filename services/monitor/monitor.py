"""The monitor: samples the system, takes in application metrics, keeps history, raises alerts,
checks health, and feeds live streams. Plain Python: the servicer calls it, tests drive it.

Everything that changes state runs on the event loop; only the psutil reading runs in a thread
(it reads /proc). One sampling round, every ``sample_interval``:

1. read the system (psutil) and store rates and values; evaluate alert rules on them;
2. check the health of every component (concurrently, each with a deadline);
3. resolve alerts whose series went silent; store the monitor's own series
   (``monitor.health.score``, ``monitor.component.up``, ``monitor.alerts.active``, ``monitor.series``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from services.monitor.alerts import AlertEngine, AlertEvent, EventKind, Level
from services.monitor.app_metrics import AppMetrics, MetricBatch
from services.monitor.health import HealthChecker, HealthReport, score
from services.monitor.sampling import METRICS, Clock, RateSampler, SystemReader
from services.monitor.series import LabelSet, SeriesStore
from services.monitor.streams import AlertFeed, Pacer

__all__ = ["SELF_METRICS", "Monitor"]

log = logging.getLogger("mediasuite.monitor")

SELF_METRICS: dict[str, tuple[str, str]] = {
    "monitor.health.score": ("1", "health score of the suite, 0-100"),
    "monitor.component.up": ("1", "1 when the component (label component) is serving, else 0"),
    "monitor.alerts.active": ("{alert}", "active alerts at a level (label level)"),
    "monitor.series": ("{series}", "series held by the monitor"),
    "monitor.samples.dropped": (
        "{sample}",
        "samples dropped since start because the series limit was reached",
    ),
}


class Monitor:
    """The monitor's state and its sampling loop."""

    def __init__(
        self,
        *,
        store: SeriesStore,
        engine: AlertEngine,
        reader: SystemReader,
        clock: Clock,
        health: HealthChecker,
        sample_interval: float,
        stream_buffer: int = 256,
        rules_source: str = "defaults",
    ) -> None:
        self.store = store
        self.engine = engine
        self.reader = reader
        self.clock = clock
        self.health = health
        self.sample_interval = sample_interval
        self.stream_buffer = stream_buffer
        self.rules_source = rules_source
        self.app = AppMetrics(baseline_limit=store.series_limit)
        self.sampled_at = 0.0
        self.otlp_rejected = 0
        self._sampler = RateSampler()
        self._feeds: set[AlertFeed] = set()
        self._task: asyncio.Task[None] | None = None
        self._rounds = 0
        engine.listeners.append(self._publish)

    def record(
        self,
        name: str,
        labels: LabelSet,
        value: float,
        now: float,
        *,
        unit: str = "",
        description: str = "",
        source: str = "",
    ) -> bool:
        """Store one sample and evaluate the rules that watch it; False when it was dropped."""
        stored = self.store.record(
            name, labels, value, now, unit=unit, description=description, source=source
        )
        if stored is None:
            return False
        if self.engine.watches(name):
            self.engine.observe(name, labels, value, now)
        return True

    def ingest(self, batches: Iterable[MetricBatch]) -> int:
        """Store the samples derived from OTLP metric batches; returns how many were dropped."""
        now = self.clock.time()
        dropped = 0
        for batch in batches:
            for s in self.app.ingest(batch):
                if not self.record(
                    s.name,
                    s.labels,
                    s.value,
                    now,
                    unit=s.unit,
                    description=s.description,
                    source=batch.service,
                ):
                    dropped += 1
        self.otlp_rejected += dropped
        return dropped

    async def sample(self) -> None:
        """One sampling round (see the module's docstring)."""
        reading = await asyncio.to_thread(self.reader.read)
        now = self.clock.time()
        for s in self._sampler.samples(reading, now):
            unit, description = METRICS[s.name]
            self.record(s.name, s.labels, s.value, now, unit=unit, description=description, source="psutil")
        self.sampled_at = now
        states = await self.health.check(now)
        self.engine.sweep(now)
        report = score(states, self.engine.active())
        self._self("monitor.health.score", (), report.score, now)
        for state in states:
            self._self("monitor.component.up", (("component", state.name),), float(state.serving), now)
        for level in (Level.INFO, Level.WARNING, Level.CRITICAL, Level.EMERGENCY):
            count = report.active_alerts.get(level.name, 0)
            self._self("monitor.alerts.active", (("level", level.name),), float(count), now)
        self._self("monitor.series", (), float(self.store.count), now)
        self._self("monitor.samples.dropped", (), float(self.store.dropped_samples), now)
        self._rounds += 1
        if self._rounds % max(1, round(60 / self.sample_interval)) == 0:  # about once a minute
            self.store.evict_idle(now)
            self.app.forget_before(now - 3600)

    def _self(self, name: str, labels: LabelSet, value: float, now: float) -> None:
        unit, description = SELF_METRICS[name]
        self.record(name, labels, value, now, unit=unit, description=description, source="monitor")

    def health_report(self) -> HealthReport:
        """The health report from the latest checks and the active alerts."""
        return score(self.health.states, self.engine.active())

    async def start(self) -> None:
        """Take a first sample (baseline of rates, first health check), then sample in the background."""
        await self.sample()
        self._task = asyncio.create_task(self._run(), name="monitor-sampling")

    async def _run(self) -> None:
        pacer = Pacer(self.sample_interval)
        await pacer.wait()  # the first tick is now: start() sampled already
        while True:
            missed = await pacer.wait()
            if missed:
                log.warning("sampling fell %d interval(s) behind", missed)
            try:
                await self.sample()
            except OSError as error:  # /proc unreadable for a moment: skip this round, keep going
                log.warning("sampling failed: %s", error)

    async def stop(self) -> None:
        """Stop sampling and close the probes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.health.close()

    def active_events(self) -> list[AlertEvent]:
        """One FIRED event per active alert (for a stream's start or after it dropped events)."""
        now = self.clock.time()
        return [
            AlertEvent(self.engine.sequence, now, EventKind.FIRED, alert, Level.NONE)
            for alert in self.engine.active()
        ]

    def subscribe(self, min_level: Level) -> AlertFeed:
        """A bounded feed of alert events for one stream caller; call :meth:`unsubscribe` at its end."""
        feed = AlertFeed(self.stream_buffer, min_level, self.active_events)
        self._feeds.add(feed)
        return feed

    def unsubscribe(self, feed: AlertFeed) -> None:
        """Stop feeding a stream that ended."""
        self._feeds.discard(feed)

    def _publish(self, event: AlertEvent) -> None:
        for feed in self._feeds:
            feed.publish(event)

"""gRPC servicer of the monitor service: proto in, domain call, proto out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from mediasuite.monitor.v1 import monitor_service_pb2 as pb
from mediasuite.monitor.v1 import monitor_service_pb2_grpc
from services.monitor.alerts import Alert, AlertEvent, Level, Rule, page_size
from services.monitor.health import ComponentState
from services.monitor.monitor import Monitor
from services.monitor.report import build_report, check_hours, period_events
from services.monitor.series import Series
from services.monitor.streams import Pacer
from services.runtime.errors import InvalidArgument

__all__ = ["MonitorServiceServicer"]

_DEFAULT_WINDOW = 900.0
_DEFAULT_STREAM_INTERVAL = 5.0
_STATUS = {
    "excellent": pb.HEALTH_STATUS_EXCELLENT,
    "good": pb.HEALTH_STATUS_GOOD,
    "fair": pb.HEALTH_STATUS_FAIR,
    "poor": pb.HEALTH_STATUS_POOR,
    "critical": pb.HEALTH_STATUS_CRITICAL,
}


def _ts(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def _seconds(value: Duration) -> float:
    return value.seconds + value.nanos / 1e9


def _level(value: int, field: str) -> Level:
    if value not in Level._value2member_map_:
        raise InvalidArgument(f"{field} must be one of the AlertLevel values, not {value}", field=field)
    return Level(value)


def _alert(alert: Alert) -> pb.Alert:
    return pb.Alert(
        id=alert.id,
        rule=alert.rule,
        metric=alert.metric,
        labels=dict(alert.labels),
        level=int(alert.level),  # type: ignore[arg-type]
        value=alert.value,
        threshold=alert.threshold,
        since=_ts(alert.since),
        changed_at=_ts(alert.changed_at),
        message=alert.message,
    )


def _event(event: AlertEvent) -> pb.AlertEvent:
    return pb.AlertEvent(
        sequence=event.sequence,
        time=_ts(event.time),
        kind=event.kind.value,  # type: ignore[arg-type]
        alert=_alert(event.alert),
        previous_level=int(event.previous),  # type: ignore[arg-type]
    )


def _rule(rule: Rule) -> pb.AlertRule:
    t = rule.thresholds
    return pb.AlertRule(
        name=rule.name,
        metric=rule.metric,
        labels=dict(rule.labels),
        thresholds=pb.Thresholds(
            info=t.get(Level.INFO, 0.0),
            warning=t.get(Level.WARNING, 0.0),
            critical=t.get(Level.CRITICAL, 0.0),
            emergency=t.get(Level.EMERGENCY, 0.0),
        ),
        hold=_duration(rule.hold),
        hysteresis=rule.hysteresis,
        description=rule.description,
    )


def _component(c: ComponentState) -> pb.ComponentHealth:
    return pb.ComponentHealth(
        name=c.name,
        target=c.target,
        serving=c.serving,
        detail=c.detail,
        latency=_duration(c.latency),
        checked_at=_ts(c.checked_at),
    )


class MonitorServiceServicer(monitor_service_pb2_grpc.MonitorServiceServicer):
    """MonitorService over a :class:`Monitor`."""

    def __init__(self, monitor: Monitor, *, stream_min_interval: float, stream_max_interval: float) -> None:
        self._monitor = monitor
        self._min_interval = stream_min_interval
        self._max_interval = stream_max_interval
        self._snapshot_key: tuple[str, int] = ("", -1)
        self._snapshot: list[pb.MetricSample] = []

    def _samples(self, prefix: str) -> list[pb.MetricSample]:
        store = self._monitor.store
        key = (prefix, store.version)
        if key != self._snapshot_key:
            self._snapshot = [self._sample(s) for s in store.latest(prefix)]
            self._snapshot_key = key
        return self._snapshot

    def _sample(self, series: Series) -> pb.MetricSample:
        return pb.MetricSample(
            name=series.name,
            labels=dict(series.labels),
            value=series.value,
            unit=self._monitor.store.metrics[series.name].unit,
            time=_ts(series.time),
        )

    async def GetCurrentMetrics(
        self, request: pb.GetCurrentMetricsRequest, context: Any
    ) -> pb.GetCurrentMetricsResponse:
        """The latest sample of each series."""
        return pb.GetCurrentMetricsResponse(
            samples=self._samples(request.prefix), sampled_at=_ts(self._monitor.sampled_at)
        )

    async def ListMetrics(self, request: pb.ListMetricsRequest, context: Any) -> pb.ListMetricsResponse:
        """Every metric known, with unit, description, source and series count."""
        store = self._monitor.store
        return pb.ListMetricsResponse(
            metrics=[
                pb.MetricDescriptor(
                    name=d.name,
                    unit=d.unit,
                    description=d.description,
                    source=d.source,
                    series_count=len(d.series),
                )
                for d in sorted(store.metrics.values(), key=lambda d: d.name)
                if d.series
            ],
            series_count=store.count,
            series_limit=store.series_limit,
        )

    async def GetHistory(self, request: pb.GetHistoryRequest, context: Any) -> pb.GetHistoryResponse:
        """Points of every matching series over the window."""
        if not request.metric:
            raise InvalidArgument("metric must name a metric (ListMetrics shows them)", field="metric")
        window = _seconds(request.window) if request.HasField("window") else _DEFAULT_WINDOW
        step = _seconds(request.step) if request.HasField("step") else None
        used, found = self._monitor.store.history(
            request.metric, dict(request.labels), window, step, self._monitor.clock.time()
        )
        return pb.GetHistoryResponse(
            series=[
                pb.Series(
                    metric=series.name,
                    labels=dict(series.labels),
                    points=[
                        pb.HistoryPoint(time=_ts(p.time), avg=p.avg, min=p.min, max=p.max, count=p.samples)
                        for p in points
                    ],
                )
                for series, points in found
            ],
            step=_duration(used),
        )

    async def GetActiveAlerts(
        self, request: pb.GetActiveAlertsRequest, context: Any
    ) -> pb.GetActiveAlertsResponse:
        """Active alerts, most severe first."""
        level = _level(request.min_level, "min_level")
        return pb.GetActiveAlertsResponse(alerts=[_alert(a) for a in self._monitor.engine.active(level)])

    async def ListAlertEvents(
        self, request: pb.ListAlertEventsRequest, context: Any
    ) -> pb.ListAlertEventsResponse:
        """Past alert events, newest first, a page at a time."""
        size = page_size(request.page_size)
        before: int | None = None
        if request.page_token:
            if not request.page_token.isdigit():
                raise InvalidArgument(
                    "page_token must be a token from a previous response", field="page_token"
                )
            before = int(request.page_token)
        since = 0.0
        if request.HasField("since"):
            try:
                since = request.since.ToNanoseconds() / 1e9
            except ValueError as error:
                raise InvalidArgument(
                    f"since is not a valid time ({error}): use 0001-01-01 to 9999-12-31, nanos 0-999999999",
                    field="since",
                ) from None
        events = self._monitor.engine.events(
            since=since,
            min_level=_level(request.min_level, "min_level"),
            before_sequence=before,
            limit=size + 1,
        )
        more = len(events) > size
        events = events[:size]
        return pb.ListAlertEventsResponse(
            events=[_event(e) for e in events],
            next_page_token=str(events[-1].sequence) if more and events else "",
        )

    async def ListAlertRules(
        self, request: pb.ListAlertRulesRequest, context: Any
    ) -> pb.ListAlertRulesResponse:
        """The rules in force and where they came from."""
        return pb.ListAlertRulesResponse(
            rules=[_rule(r) for r in self._monitor.engine.rules], source=self._monitor.rules_source
        )

    async def GetHealth(self, request: pb.GetHealthRequest, context: Any) -> pb.GetHealthResponse:
        """Score, status word, each component, active alerts by level, and the deductions."""
        report = self._monitor.health_report()
        return pb.GetHealthResponse(
            score=report.score,
            status=_STATUS[report.status],
            components=[_component(c) for c in report.components],
            active_alerts=report.active_alerts,
            deductions=list(report.deductions),
        )

    async def GetReport(self, request: pb.GetReportRequest, context: Any) -> pb.GetReportResponse:
        """min/avg/max/p95 per series, alert counts by level, the slowest methods."""
        hours = check_hours(request.hours)
        monitor = self._monitor
        now = monitor.clock.time()
        series = monitor.store.latest()
        events = period_events(monitor.engine, hours, now)
        # Up to a million slots for 24 h of 1000 series: computed in a thread, over snapshots of the lists.
        report = await asyncio.to_thread(build_report, monitor.store, series, events, hours, now)
        return pb.GetReportResponse(
            to=_ts(report.end),
            series=[
                pb.SeriesSummary(
                    metric=s.series.name,
                    labels=dict(s.series.labels),
                    min=s.min,
                    avg=s.avg,
                    max=s.max,
                    p95=s.p95,
                    unit=s.unit,
                )
                for s in report.series
            ],
            alerts_by_level=report.alerts_by_level,
            slowest_methods=[
                pb.MethodLatency(
                    service=m.service,
                    method=m.method,
                    p95_ms=m.p95_ms,
                    p99_ms=m.p99_ms,
                    calls=m.calls,
                    error_rate=m.error_rate,
                )
                for m in report.slowest
            ],
            **{"from": _ts(report.start)},
        )

    def _interval(self, value: Duration | None) -> float:
        if value is None:
            return min(max(_DEFAULT_STREAM_INTERVAL, self._min_interval), self._max_interval)
        seconds = _seconds(value)
        if not self._min_interval <= seconds <= self._max_interval:
            raise InvalidArgument(
                f"interval must be from {self._min_interval:g}s to {self._max_interval:g}s, not {seconds:g}s "
                "(MONITOR_STREAM_MIN_INTERVAL / MONITOR_STREAM_MAX_INTERVAL set the range)",
                field="interval",
            )
        return seconds

    async def StreamMetrics(
        self, request: pb.StreamMetricsRequest, context: Any
    ) -> AsyncIterator[pb.StreamMetricsResponse]:
        """The latest samples every interval; ticks missed by a slow caller are skipped and counted."""
        interval = self._interval(request.interval if request.HasField("interval") else None)
        pacer = Pacer(interval)
        while True:
            dropped = await pacer.wait()
            yield pb.StreamMetricsResponse(
                samples=self._samples(request.prefix),
                time=_ts(self._monitor.clock.time()),
                dropped_snapshots=dropped,
            )

    async def StreamAlerts(
        self, request: pb.StreamAlertsRequest, context: Any
    ) -> AsyncIterator[pb.StreamAlertsResponse]:
        """Alert events as they happen; a slow caller gets drops, counted, then the active set again."""
        monitor = self._monitor
        level = _level(request.min_level, "min_level")
        feed = monitor.subscribe(level)
        try:
            initial: Sequence[AlertEvent] = monitor.active_events() if request.include_active else ()
            for event in initial:
                if feed.wanted(event):
                    yield pb.StreamAlertsResponse(event=_event(event))
            while True:
                for event, dropped in await feed.next():
                    yield pb.StreamAlertsResponse(event=_event(event), dropped_events=dropped)
        finally:
            monitor.unsubscribe(feed)

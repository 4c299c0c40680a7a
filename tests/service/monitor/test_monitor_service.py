"""The monitor's gRPC server, real on loopback: OTLP in, history, alerts and their stream, health,
report, and the errors of every bounded request. The clock and the system readings are the test's
(tests/support/monitor.py), so alert holds run without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from mediasuite.cache.v1 import cache_service_pb2 as cache_pb
from mediasuite.common.v1 import media_pb2
from mediasuite.monitor.v1 import monitor_service_pb2 as pb
from mediasuite.monitor.v1 import monitor_service_pb2_grpc
from services.monitor.config import MonitorConfig
from services.monitor.server import MonitorServer, build_server
from services.runtime.config import Env
from services.runtime.telemetry import Telemetry
from tests.support.cache import running_cache
from tests.support.grpc_errors import detail
from tests.support.monitor import ManualClock, ScriptedReader, gauge_request

RULES = """\
rules:
  - name: temperature
    metric: room.temperature
    thresholds: {warning: 50, critical: 80}
    hold: 10s
    hysteresis: 5
"""
EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


@dataclass
class Running:
    server: MonitorServer
    channel: grpc.aio.Channel
    stub: monitor_service_pb2_grpc.MonitorServiceAsyncStub
    clock: ManualClock

    async def export(self, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
        call = self.channel.unary_unary(
            EXPORT,
            request_serializer=ExportMetricsServiceRequest.SerializeToString,
            response_deserializer=ExportMetricsServiceResponse.FromString,
        )
        reply: ExportMetricsServiceResponse = await call(request, timeout=5)
        return reply


@pytest.fixture
async def monitor(tmp_path: Path) -> AsyncIterator[Running]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = MonitorConfig.from_env(
        Env(
            {
                "MONITOR_LISTEN": "127.0.0.1:0",
                "MONITOR_HTTP_LISTEN": "127.0.0.1:0",
                "MONITOR_CHECK": "none",
                "MONITOR_SAMPLE_INTERVAL": "60s",  # the test drives everything after the first sample
                "MONITOR_STREAM_MIN_INTERVAL": "100ms",
                "MONITOR_STREAM_BUFFER": "4",
                "MONITOR_SERIES_LIMIT": "1200",
                "MONITOR_OTLP_MAX_POINTS": "1500",
                "MONITOR_RULES_FILE": str(rules),
            }
        )
    )
    clock = ManualClock()
    server = await build_server(config, Telemetry(), reader=ScriptedReader(), clock=clock)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield Running(server, channel, monitor_service_pb2_grpc.MonitorServiceStub(channel), clock)
    finally:
        await channel.close(None)
        await server.stop(grace=1.0)


def _seconds(value: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(value * 1e9))
    return d


def _exporting_to(monitor: Running, service: str) -> MeterProvider:
    """An OTel SDK meter provider exporting to the monitor as ``mediasuite-<service>``, only when
    flushed (or shut down)."""
    return MeterProvider(
        resource=Resource.create({"service.name": f"mediasuite-{service}"}),
        metric_readers=[
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=monitor.server.address, insecure=True),
                export_interval_millis=3_600_000,
            )
        ],
    )


async def test_a_gauge_exported_by_the_otel_sdk_shows_in_history(monitor: Running) -> None:
    provider = _exporting_to(monitor, "probe")

    def observe(options: CallbackOptions) -> list[Observation]:
        return [Observation(21.5, {"room": "lab"})]

    provider.get_meter("test").create_observable_gauge("room.temperature", [observe], unit="Cel")
    await asyncio.to_thread(provider.force_flush)
    await asyncio.to_thread(provider.shutdown)
    reply = await monitor.stub.GetHistory(
        pb.GetHistoryRequest(metric="room.temperature", window=_seconds(300))
    )
    (series,) = reply.series
    assert dict(series.labels) == {"room": "lab", "service": "probe"}
    (point,) = series.points  # force_flush and shutdown both exported: one slot, two samples of 21.5
    assert (point.avg, point.min, point.max, point.count) == (21.5, 21.5, 21.5, 2)
    listed = {m.name: m for m in (await monitor.stub.ListMetrics(pb.ListMetricsRequest())).metrics}
    assert (listed["room.temperature"].unit, listed["room.temperature"].source) == ("Cel", "probe")


async def test_a_real_cache_with_one_hit_and_three_misses_shows_a_25_percent_hit_ratio(
    monitor: Running, tmp_path: Path
) -> None:
    # The cache labels its misses by reason (absent, stale): the ratio must count both.
    provider = _exporting_to(monitor, "cache")
    source = tmp_path / "a.jpg"
    source.write_bytes(b"original")
    stat = source.stat()
    fingerprint = media_pb2.SourceFingerprint(
        path="a.jpg", size_bytes=stat.st_size, mtime_ns=stat.st_mtime_ns
    )
    telemetry = Telemetry(meter_provider=provider)
    async with running_cache("memory", telemetry=telemetry, CACHE_MEDIA_ROOT=str(tmp_path)) as cache:
        await cache.stub.Set(
            cache_pb.SetRequest(namespace="thumbnail", key="a", value=b"t", fingerprint=fingerprint)
        )

        async def get(key: str) -> cache_pb.GetResponse:
            request = cache_pb.GetRequest(namespace="thumbnail", key=key, verify_source=True)
            reply: cache_pb.GetResponse = await cache.stub.Get(request)
            return reply

        assert (await get("a")).found
        source.write_bytes(b"edited in place")
        assert (await get("a")).miss_reason == cache_pb.MISS_REASON_STALE
        for absent in ("b", "c"):
            assert (await get(absent)).miss_reason == cache_pb.MISS_REASON_ABSENT
        await asyncio.to_thread(provider.force_flush)
    await asyncio.to_thread(provider.shutdown)
    current = await monitor.stub.GetCurrentMetrics(pb.GetCurrentMetricsRequest(prefix="cache.hit_ratio"))
    assert [(s.name, dict(s.labels), s.value, s.unit) for s in current.samples] == [
        ("cache.hit_ratio", {"cache.namespace": "thumbnail", "service": "cache"}, 25.0, "%")
    ]
    # One meaning per series: no other figure (such as a 0-1 ratio since start) shares it.
    history = await monitor.stub.GetHistory(
        pb.GetHistoryRequest(metric="cache.hit_ratio", window=_seconds(300))
    )
    assert [[(p.min, p.max) for p in s.points] for s in history.series] == [[(25.0, 25.0)]]


async def test_alert_life_is_streamed_exactly_and_in_order(monitor: Running) -> None:
    stream = monitor.stub.StreamAlerts(pb.StreamAlertsRequest())
    await asyncio.sleep(0.2)  # the stream is subscribed before the first value arrives
    values = [60, 60, 60, 62, 90, 90, 90, 77, 76, 60, 47, 46, 40]
    for value in values:
        await monitor.export(gauge_request("room.temperature", {(): value}))
        monitor.clock.advance(5)
    got = []
    async for message in stream:
        e = message.event
        got.append((e.kind, e.alert.level, e.previous_level, message.dropped_events))
        if e.kind == pb.ALERT_EVENT_KIND_RESOLVED:
            break
    stream.cancel()
    assert got == [
        (pb.ALERT_EVENT_KIND_FIRED, pb.ALERT_LEVEL_WARNING, pb.ALERT_LEVEL_UNSPECIFIED, 0),
        (pb.ALERT_EVENT_KIND_ESCALATED, pb.ALERT_LEVEL_CRITICAL, pb.ALERT_LEVEL_WARNING, 0),
        (pb.ALERT_EVENT_KIND_DEESCALATED, pb.ALERT_LEVEL_WARNING, pb.ALERT_LEVEL_CRITICAL, 0),
        (pb.ALERT_EVENT_KIND_RESOLVED, pb.ALERT_LEVEL_UNSPECIFIED, pb.ALERT_LEVEL_WARNING, 0),
    ]
    events = (await monitor.stub.ListAlertEvents(pb.ListAlertEventsRequest(page_size=3))).events
    assert [e.sequence for e in events] == [4, 3, 2]
    page = await monitor.stub.ListAlertEvents(pb.ListAlertEventsRequest(page_size=3))
    rest = await monitor.stub.ListAlertEvents(
        pb.ListAlertEventsRequest(page_size=3, page_token=page.next_page_token)
    )
    assert [e.sequence for e in rest.events] == [1]
    assert rest.next_page_token == ""
    report = await monitor.stub.GetReport(pb.GetReportRequest(hours=1))
    assert dict(report.alerts_by_level) == {"WARNING": 1, "CRITICAL": 1}


async def test_active_alerts_health_and_include_active(monitor: Running) -> None:
    for _ in range(3):
        await monitor.export(gauge_request("room.temperature", {(("room", "a"),): 85, (("room", "b"),): 55}))
        monitor.clock.advance(5)
    alerts = (await monitor.stub.GetActiveAlerts(pb.GetActiveAlertsRequest())).alerts
    assert [(a.id, a.level) for a in alerts] == [
        ("temperature{room=a,service=test}", pb.ALERT_LEVEL_CRITICAL),
        ("temperature{room=b,service=test}", pb.ALERT_LEVEL_WARNING),
    ]
    critical = await monitor.stub.GetActiveAlerts(
        pb.GetActiveAlertsRequest(min_level=pb.ALERT_LEVEL_CRITICAL)
    )
    assert len(critical.alerts) == 1
    health = await monitor.stub.GetHealth(pb.GetHealthRequest())
    assert health.score == 100 - 20 - 10
    assert health.status == pb.HEALTH_STATUS_FAIR
    assert dict(health.active_alerts) == {"WARNING": 1, "CRITICAL": 1}
    stream = monitor.stub.StreamAlerts(pb.StreamAlertsRequest(include_active=True))
    first = [cast(Any, await stream.read()).event for _ in range(2)]
    stream.cancel()
    assert [(e.kind, e.alert.id) for e in first] == [
        (pb.ALERT_EVENT_KIND_FIRED, "temperature{room=a,service=test}"),
        (pb.ALERT_EVENT_KIND_FIRED, "temperature{room=b,service=test}"),
    ]


async def test_a_slow_alert_consumer_gets_drops_counted_then_the_active_set(monitor: Running) -> None:
    stream = monitor.stub.StreamAlerts(pb.StreamAlertsRequest())
    await asyncio.sleep(0.2)
    rooms = {(("room", str(i)),): 60.0 for i in range(10)}
    for _ in range(3):  # one Export makes 10 alerts fire at once: the buffer holds 4
        await monitor.export(gauge_request("room.temperature", rooms))
        monitor.clock.advance(5)
    got = [cast(Any, await stream.read()) for _ in range(14)]
    stream.cancel()
    assert [m.dropped_events for m in got[:4]] == [0, 0, 0, 0]
    assert got[4].dropped_events == 6
    assert {m.event.alert.id for m in got[4:]} == {f"temperature{{room={i},service=test}}" for i in range(10)}


async def test_stream_metrics_sends_snapshots_and_counts_what_a_slow_reader_missed(monitor: Running) -> None:
    big = {(("series", f"{i:04d}"), ("pad", "x" * 100)): float(i) for i in range(1000)}
    await monitor.export(gauge_request("wide.gauge", big))
    # A fixed 64 KiB HTTP/2 window (no BDP probing), so a reader that stops reading soon blocks the sender.
    async with grpc.aio.insecure_channel(
        monitor.server.address, options=[("grpc.http2.bdp_probe", 0)]
    ) as channel:
        stub = monitor_service_pb2_grpc.MonitorServiceStub(channel)
        stream = stub.StreamMetrics(pb.StreamMetricsRequest(interval=_seconds(0.1), prefix="wide."))
        first = cast(Any, await stream.read())
        assert len(first.samples) == 1000
        await asyncio.sleep(1.5)  # ~15 intervals, far more than the transport buffers at ~150 KB each
        got = [cast(Any, await stream.read()) for _ in range(5)]
        stream.cancel()
    assert sum(m.dropped_snapshots for m in got) > 0
    assert all(len(m.samples) == 1000 for m in got)


async def test_current_metrics_and_report_include_system_samples(monitor: Running) -> None:
    current = await monitor.stub.GetCurrentMetrics(pb.GetCurrentMetricsRequest(prefix="system.memory"))
    assert {s.name for s in current.samples} == {"system.memory.percent", "system.memory.used"}
    assert current.sampled_at.seconds == int(ManualClock().now)
    report = await monitor.stub.GetReport(pb.GetReportRequest(hours=24))
    names = {s.metric for s in report.series}
    assert {"system.memory.percent", "monitor.health.score"} <= names
    assert (getattr(report, "from").seconds, report.to.seconds) == (
        int(monitor.clock.now) - 24 * 3600,
        int(monitor.clock.now),
    )


async def test_an_export_with_too_many_points_is_refused_naming_the_limit(monitor: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.export(gauge_request("flood", {(("i", str(i)),): 1.0 for i in range(1501)}))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (caught.value.details() or "") == (
        "data points in one Export (1501) exceeds the limit max_points_per_export=1500; "
        "raise MONITOR_OTLP_MAX_POINTS to allow more"
    )


async def test_series_beyond_the_limit_are_rejected_as_partial_success(monitor: Running) -> None:
    many = {(("i", str(i)),): 1.0 for i in range(1300)}
    reply = await monitor.export(gauge_request("flood", many))
    assert reply.partial_success.rejected_data_points > 100
    assert "MONITOR_SERIES_LIMIT" in reply.partial_success.error_message
    listed = await monitor.stub.ListMetrics(pb.ListMetricsRequest())
    assert (listed.series_count, listed.series_limit) == (1200, 1200)


@pytest.mark.parametrize(
    ("call", "request_", "code", "field", "text"),
    [
        (
            "GetHistory",
            pb.GetHistoryRequest(metric="no.such"),
            grpc.StatusCode.NOT_FOUND,
            "",
            "no metric named",
        ),
        (
            "GetHistory",
            pb.GetHistoryRequest(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "metric",
            "metric must name",
        ),
        (
            "GetHistory",
            pb.GetHistoryRequest(metric="system.memory.percent", window=_seconds(25 * 3600)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "window",
            "at most 24h",
        ),
        (
            "GetHistory",
            pb.GetHistoryRequest(metric="system.memory.percent", step=_seconds(1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "step",
            "at least 60s",
        ),
        (
            "GetReport",
            pb.GetReportRequest(hours=25),
            grpc.StatusCode.INVALID_ARGUMENT,
            "hours",
            "from 1 to 24",
        ),
        (
            "ListAlertEvents",
            pb.ListAlertEventsRequest(page_size=5000),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_size",
            "from 1 to 1000",
        ),
        (
            "ListAlertEvents",
            pb.ListAlertEventsRequest(page_token="abc"),  # noqa: S106 (a page token, not a password)
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
            "previous response",
        ),
        (
            "GetActiveAlerts",
            pb.GetActiveAlertsRequest(min_level=9),  # type: ignore[arg-type]
            grpc.StatusCode.INVALID_ARGUMENT,
            "min_level",
            "AlertLevel",
        ),
    ],
)
async def test_bad_requests_get_clear_errors(  # noqa: PLR0917 (parametrized)
    monitor: Running, call: str, request_: object, code: grpc.StatusCode, field: str, text: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(monitor.stub, call)(request_, timeout=5)
    assert caught.value.code() == code
    assert text in (caught.value.details() or "")
    if field:
        bad = detail(caught.value, error_details_pb2.BadRequest)
        assert bad is not None
        assert bad.field_violations[0].field == field


@pytest.mark.parametrize("seconds", [0.01, 61.0])
async def test_stream_interval_out_of_range_is_invalid_argument_naming_the_range(
    monitor: Running, seconds: float
) -> None:
    stream = monitor.stub.StreamMetrics(pb.StreamMetricsRequest(interval=_seconds(seconds)))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "interval must be from 0.1s to 60s" in (caught.value.details() or "")
    assert "MONITOR_STREAM_MIN_INTERVAL" in (caught.value.details() or "")


async def test_rules_in_force_are_listed(monitor: Running) -> None:
    reply = await monitor.stub.ListAlertRules(pb.ListAlertRulesRequest())
    (rule,) = reply.rules
    assert reply.source.endswith("rules.yaml")
    assert (rule.name, rule.thresholds.warning, rule.thresholds.critical, rule.thresholds.emergency) == (
        "temperature",
        50,
        80,
        0,
    )
    assert (rule.hold.seconds, rule.hysteresis) == (10, 5)


async def test_prometheus_endpoint_serves_the_latest_values(monitor: Running) -> None:
    await monitor.export(gauge_request("room.temperature", {(("room", "lab"),): 19.0}))
    reader, writer = await asyncio.open_connection("127.0.0.1", monitor.server.metrics_http.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: monitor\r\n\r\n")
    body = (await reader.read()).decode()
    writer.close()
    assert 'room_temperature{room="lab",service="test"} 19.0' in body
    assert "system_memory_percent 40.0" in body


@pytest.mark.parametrize(("seconds", "nanos"), [(2**63 - 1, 0), (-(2**63), 0), (0, 2**31 - 1), (0, -1)])
async def test_an_out_of_range_since_is_invalid_argument_not_internal(
    monitor: Running, seconds: int, nanos: int
) -> None:
    # Found by tests/e2e/test_fuzz_protobuf.py: Timestamp.ToNanoseconds raised ValueError (INTERNAL).
    request = pb.ListAlertEventsRequest(page_size=3)
    request.since.seconds, request.since.nanos = seconds, nanos
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await monitor.stub.ListAlertEvents(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "since is not a valid time" in (caught.value.details() or "")

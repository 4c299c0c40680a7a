"""The cache is observable: its statistics as OpenTelemetry metrics, its Redis commands as spans."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from mediasuite.cache.v1 import cache_service_pb2 as pb
from services.runtime.telemetry import Telemetry
from tests.support.cache import running_cache


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], float]]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[tuple[dict[str, object], float]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:  # a histogram (the runtime's rpc.server.duration)
                        value = float(getattr(point, "count", 0))
                    found.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return found


def _value(points: list[tuple[dict[str, object], float]], **attributes: object) -> float:
    matching = [v for attrs, v in points if all(attrs.get(k) == a for k, a in attributes.items())]
    assert len(matching) == 1, (attributes, points)
    return matching[0]


async def test_statistics_are_exported_as_metrics() -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    async with running_cache("redis", telemetry=telemetry) as cache:
        await cache.stub.Set(pb.SetRequest(namespace="thumbnail", key="a", value=b"x" * 5000))
        for key in ("a", "a", "b"):
            await cache.stub.Get(pb.GetRequest(namespace="thumbnail", key=key))
        await cache.stub.GetStats(pb.GetStatsRequest())  # counts the entries
        points = _points(reader)
    ns = {"cache.namespace": "thumbnail"}
    assert _value(points["cache.hits"], **ns) == 2
    assert _value(points["cache.misses"], **ns, **{"cache.miss_reason": "absent"}) == 1
    assert _value(points["cache.misses"], **ns, **{"cache.miss_reason": "stale"}) == 0
    assert _value(points["cache.sets"], **ns) == 1
    assert _value(points["cache.entries"], **ns) == 1
    assert _value(points["cache.bytes"], **ns, **{"cache.bytes.kind": "raw"}) == 5000
    assert _value(points["cache.bytes"], **ns, **{"cache.bytes.kind": "stored"}) < 100
    # The monitor derives cache.hit_ratio (%) from the counters: no 0-1 gauge shares its name.
    assert "cache.hit_ratio" not in points
    assert _value(points["cache.compression_ratio"], **ns) > 50
    assert _value(points["cache.backend.latency"], **ns, quantile=0.99) > 0
    assert _value(points["cache.degraded"]) == 0
    assert _value(points["cache.failovers"]) == 0
    assert _value(points["cache.evictions"], **ns) == 0
    # The runtime's RPC metrics are there too.
    assert "rpc.server.duration" in points


async def test_a_traced_get_shows_the_redis_command_as_a_child_span() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with running_cache("redis", telemetry=Telemetry(tracer_provider=provider)) as cache:
        await cache.stub.Get(pb.GetRequest(namespace="thumbnail", key="k"))
        await cache.stub.GetMany(pb.GetManyRequest(namespace="thumbnail", keys=["a", "b"]))
    spans = exporter.get_finished_spans()
    by_name = {s.name: s for s in spans}
    server = by_name["/mediasuite.cache.v1.CacheService/Get"]
    command = by_name["GET"]
    assert server.kind == SpanKind.SERVER
    assert command.kind == SpanKind.CLIENT
    assert command.parent is not None
    assert command.parent.span_id == server.context.span_id
    assert command.attributes is not None
    assert command.attributes["db.system"] == "redis"
    mget = by_name["MGET"]
    assert mget.attributes is not None
    assert mget.attributes["db.operation.batch.size"] == 2
    assert mget.parent is not None
    assert mget.parent.span_id == by_name["/mediasuite.cache.v1.CacheService/GetMany"].context.span_id

"""The cache's statistics are exported as OpenTelemetry metrics through the runtime's meter."""

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
    assert _value(points["cache.hit_ratio"], **ns) == 2 / 3
    assert _value(points["cache.compression_ratio"], **ns) > 50
    assert _value(points["cache.backend.latency"], **ns, quantile=0.99) > 0
    assert _value(points["cache.degraded"]) == 0
    assert _value(points["cache.failovers"]) == 0
    assert _value(points["cache.evictions"], **ns) == 0
    # The runtime's RPC metrics are there too.
    assert "rpc.server.duration" in points

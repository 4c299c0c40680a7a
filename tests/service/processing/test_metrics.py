"""Concurrency figures go out as OpenTelemetry metrics (read here with an in-memory reader)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from services.runtime.telemetry import Telemetry
from tests.service.processing.conftest import Factory
from tests.support import media as M


async def test_pool_and_operation_metrics_are_exported(processing: Factory) -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    async with processing(telemetry=telemetry) as svc:
        request = pb.ThumbnailRequest(
            media=media_pb2.MediaRef(inline=M.save(M.photo(200, 100), "PNG")), preset="tiny"
        )
        for _ in range(3):
            await svc.stub.Thumbnail(request)
        data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert [p.value for p in points["processing.pool.workers"]] == [2]
    assert sum(p.value for p in points["processing.pool.busy"]) == 0  # all returned
    assert sum(p.value for p in points["processing.pool.queued"]) == 0
    operations = {p.attributes["operation"]: p.value for p in points["processing.operations"]}
    assert operations == {"thumbnail": 3}
    assert sum(p.count for p in points["processing.operation.duration"]) == 3
    # the series the monitor's default `media_processing_time` rule watches, in seconds
    (seconds,) = points["processing.duration"]
    assert seconds.attributes == {"operation": "thumbnail"}
    assert seconds.count == 3
    assert 0 < seconds.sum < 30
    assert sum(p.count for p in points["processing.pool.queue_wait"]) == 3
    telemetry.shutdown()

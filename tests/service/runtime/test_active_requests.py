"""rpc.server.active_requests counts every inbound call in flight, unary and streaming, per method."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from services.runtime.server import ServiceBinding
from services.runtime.telemetry import Telemetry
from tests.conftest import ServerFactory


class HeldCache(cache_service_pb2_grpc.CacheServiceServicer):
    """Get waits, in flight, until the test releases it."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def Get(self, request: Any, context: Any) -> cache_service_pb2.GetResponse:
        self.entered.set()
        await self.release.wait()
        return cache_service_pb2.GetResponse(found=True)


def _active(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, float] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "rpc.server.active_requests":
                    for point in metric.data.data_points:
                        attrs = dict(point.attributes or {})
                        found[f"{attrs['rpc.service']}/{attrs['rpc.method']}"] = getattr(point, "value", -1)
    return found


async def test_unary_and_streaming_calls_in_flight_are_counted(grpc_server: ServerFactory) -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    cache = HeldCache()  # type: ignore[abstract]
    binding = ServiceBinding(
        "mediasuite.cache.v1.CacheService",
        partial(cache_service_pb2_grpc.add_CacheServiceServicer_to_server, cache),
    )
    get_method = "mediasuite.cache.v1.CacheService/Get"
    watch_method = "grpc.health.v1.Health/Watch"
    async with (
        grpc_server([binding], telemetry=telemetry) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        get = cache_service_pb2_grpc.CacheServiceStub(channel).Get(
            cache_service_pb2.GetRequest(namespace="thumbnail", key="k"), timeout=10
        )
        await cache.entered.wait()
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        await watch.read()
        assert _active(reader) == {get_method: 1, watch_method: 1}

        cache.release.set()
        assert (await get).found
        # The unary wrapper's count drops before the reply is sent; the watch is still open.
        assert _active(reader) == {get_method: 0, watch_method: 1}
        watch.cancel()

"""One call that crosses two services is one trace: server span -> client span -> server span.

Both servers run in this process with the real runtime (interceptors, channels), exporting to an
in-memory exporter, so the parent/child links can be read directly.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from mediasuite.processing.v1 import processing_service_pb2, processing_service_pb2_grpc
from services.runtime.clients import open_channel
from services.runtime.server import ServiceBinding
from services.runtime.telemetry import Telemetry
from tests.conftest import ServerFactory
from tests.support.fakes import SleepyCache


class ProbeThroughCache(processing_service_pb2_grpc.ProcessingServiceServicer):
    """Probe asks the cache first, the way the processing service does (cache-aside)."""

    def __init__(self, cache_address: str, telemetry: Telemetry) -> None:
        self._channel = open_channel(cache_address, telemetry=telemetry)
        self._cache = cache_service_pb2_grpc.CacheServiceStub(self._channel)

    async def Probe(self, request: Any, context: Any) -> processing_service_pb2.ProbeResponse:
        reply = await self._cache.Get(cache_service_pb2.GetRequest(namespace="media_metadata", key="0"))
        return processing_service_pb2.ProbeResponse(
            info=processing_service_pb2.MediaInfo(format=reply.value.decode())
        )


async def test_call_across_two_services_is_one_trace(grpc_server: ServerFactory) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(tracer_provider=provider)
    cache_binding = ServiceBinding(
        "mediasuite.cache.v1.CacheService",
        partial(cache_service_pb2_grpc.add_CacheServiceServicer_to_server, SleepyCache()),  # type: ignore[abstract]
    )
    async with grpc_server([cache_binding], telemetry=telemetry, service="cache") as cache:
        servicer = ProbeThroughCache(cache.address, telemetry)  # type: ignore[abstract]
        processing_binding = ServiceBinding(
            "mediasuite.processing.v1.ProcessingService",
            partial(processing_service_pb2_grpc.add_ProcessingServiceServicer_to_server, servicer),
        )
        async with grpc_server([processing_binding], telemetry=telemetry, service="processing") as processing:
            async with grpc.aio.insecure_channel(processing.address) as channel:
                stub = processing_service_pb2_grpc.ProcessingServiceStub(channel)
                reply = await stub.Probe(processing_service_pb2.ProbeRequest(), timeout=5)
            await servicer._channel.close(None)
    assert reply.info.format == "0"

    spans = {(s.kind, s.name): s for s in exporter.get_finished_spans()}
    probe_server = spans[(SpanKind.SERVER, "/mediasuite.processing.v1.ProcessingService/Probe")]
    get_client = spans[(SpanKind.CLIENT, "/mediasuite.cache.v1.CacheService/Get")]
    get_server = spans[(SpanKind.SERVER, "/mediasuite.cache.v1.CacheService/Get")]

    trace_ids = {s.context.trace_id for s in (probe_server, get_client, get_server)}
    assert len(trace_ids) == 1, "all three spans belong to one trace"
    assert get_client.parent is not None
    assert get_client.parent.span_id == probe_server.context.span_id
    assert get_server.parent is not None
    assert get_server.parent.span_id == get_client.context.span_id
    assert get_server.parent.is_remote, "the cache's server span continues the trace it received over gRPC"


async def test_server_span_records_the_mapped_status_and_health_is_not_traced(
    grpc_server: ServerFactory,
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from opentelemetry.trace import StatusCode

    from tests.support.fakes import FailingProcessing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    binding = ServiceBinding(
        "mediasuite.processing.v1.ProcessingService",
        partial(processing_service_pb2_grpc.add_ProcessingServiceServicer_to_server, FailingProcessing()),  # type: ignore[abstract]
    )
    telemetry = Telemetry(tracer_provider=provider)
    async with (
        grpc_server([binding], telemetry=telemetry) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = processing_service_pb2_grpc.ProcessingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Probe(processing_service_pb2.ProbeRequest(), timeout=5)
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["/mediasuite.processing.v1.ProcessingService/Probe"]
    span = spans[0]
    assert span.kind == SpanKind.SERVER
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert span.attributes["rpc.service"] == "mediasuite.processing.v1.ProcessingService"
    assert span.attributes["rpc.method"] == "Probe"
    assert span.attributes["net.peer.ip"] == "127.0.0.1"
    assert span.parent is None

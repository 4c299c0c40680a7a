"""With tracing on, an operation's work in the pool is its own span, with its queue wait."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from services.runtime.telemetry import Telemetry
from tests.service.processing.conftest import Factory
from tests.support import media as M


async def test_the_work_in_the_pool_is_a_child_span_with_its_queue_wait(processing: Factory) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with processing(telemetry=Telemetry(tracer_provider=provider)) as svc:
        path = svc.put("a.jpg", M.save(M.photo(320, 240), "JPEG"))
        request = pb.ThumbnailRequest(media=media_pb2.MediaRef(path=path), preset="tiny")
        await svc.stub.Thumbnail(request, timeout=30)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    server = spans["/mediasuite.processing.v1.ProcessingService/Thumbnail"]
    run = spans["processing.run thumbnail"]
    assert server.kind == SpanKind.SERVER
    assert run.kind == SpanKind.INTERNAL
    assert run.parent is not None
    assert run.parent.span_id == server.context.span_id
    assert run.attributes is not None
    assert run.attributes["processing.operation"] == "thumbnail"
    assert run.attributes["processing.source"] == "media.path 'a.jpg'"
    assert 0 <= float(run.attributes["processing.pool.queue_wait_ms"]) < 30_000  # type: ignore[arg-type]
    assert server.start_time is not None
    assert run.start_time is not None
    assert server.end_time is not None
    assert run.end_time is not None
    assert server.start_time <= run.start_time
    assert run.end_time <= server.end_time

"""A stand-in for an OpenTelemetry Collector in tests: a real OTLP/gRPC receiver on loopback that
records which services sent spans and metrics (by their service.name resource attribute)."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource


def _service_name(resource: Resource) -> str:
    for attribute in resource.attributes:
        if attribute.key == "service.name":
            return str(attribute.value.string_value)
    return ""


class Received:
    """What arrived: spans and metric data points per service.name, and the form of each metric."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: Counter[str] = Counter()
        self.metrics: dict[str, set[str]] = {}
        # (service.name, metric) -> (data kind, temporality): ("exponential_histogram", "DELTA"), ...
        self.forms: dict[tuple[str, str], tuple[str, str]] = {}


def _form(metric: Metric) -> tuple[str, str]:
    kind = str(metric.WhichOneof("data"))
    temporality = int(getattr(getattr(metric, kind), "aggregation_temporality", 0))
    name = AggregationTemporality.Name(AggregationTemporality.ValueType(temporality))
    return kind, name.removeprefix("AGGREGATION_TEMPORALITY_")


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        with self.received.lock:
            for resource_spans in request.resource_spans:
                name = _service_name(resource_spans.resource)
                self.received.spans[name] += sum(len(s.spans) for s in resource_spans.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        with self.received.lock:
            for resource_metrics in request.resource_metrics:
                service = _service_name(resource_metrics.resource)
                names = self.received.metrics.setdefault(service, set())
                for scope in resource_metrics.scope_metrics:
                    names.update(m.name for m in scope.metrics)
                    self.received.forms.update({(service, m.name): _form(m) for m in scope.metrics})
        return metrics_service_pb2.ExportMetricsServiceResponse()


@contextlib.contextmanager
def otlp_receiver(address: str, credentials: grpc.ServerCredentials | None = None) -> Iterator[Received]:
    """Receive OTLP/gRPC on ``address`` (plaintext, or TLS with ``credentials``) until the block ends."""
    received = Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(received), server)  # type: ignore[no-untyped-call]
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(received), server)  # type: ignore[no-untyped-call]
    if credentials is None:
        server.add_insecure_port(address)
    else:
        server.add_secure_port(address, credentials)
    server.start()
    try:
        yield received
    finally:
        server.stop(0)

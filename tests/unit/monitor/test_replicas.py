"""Several replicas of one service export under one service.name (Kubernetes Deployments do).

Cumulative points of two replicas have different start times, so the monitor takes each one for a
restart of the other and counts from its start: every interval would show a replica's whole life.
Delta points (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta, set in the Kubernetes base)
carry one interval each, whichever replica sent them. Real SDK exports, the monitor's conversion.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.util.types import Attributes

from services.monitor.app_metrics import AppMetrics
from services.monitor.otlp import batches

ATTRIBUTES: Attributes = {
    "rpc.service": "mediasuite.cache.v1.CacheService",
    "rpc.method": "Get",
    "rpc.grpc.status_code": 0,
}


class Replica:
    """One pod: a meter provider reading as the Kubernetes environment configures the exporter."""

    def __init__(self, temporality: AggregationTemporality) -> None:
        self.reader = InMemoryMetricReader(
            preferred_temporality={Histogram: temporality},
            preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()},
        )
        self.provider = MeterProvider(
            resource=Resource.create({SERVICE_NAME: "mediasuite-cache"}), metric_readers=[self.reader]
        )
        self.duration = self.provider.get_meter("runtime").create_histogram("rpc.server.duration", unit="ms")

    def serve(self, calls: int) -> None:
        for i in range(calls):
            self.duration.record(1.0 + i, ATTRIBUTES)

    def export(self, monitor: AppMetrics) -> float:
        """Collect, encode as the OTLP exporter does, and convert; returns the interval's call count."""
        data = self.reader.get_metrics_data()
        assert data is not None
        samples = [s for batch in batches(encode_metrics(data)) for s in monitor.ingest(batch)]
        (calls,) = [s.value for s in samples if s.name == "rpc.server.calls"]
        return calls


def test_delta_points_of_two_replicas_give_each_interval_of_each() -> None:
    monitor = AppMetrics(100)
    a, b = Replica(AggregationTemporality.DELTA), Replica(AggregationTemporality.DELTA)
    seen = []
    for a_calls, b_calls in ((3, 5), (2, 7), (4, 1)):
        a.serve(a_calls)
        b.serve(b_calls)
        seen += [a.export(monitor), b.export(monitor)]
    assert seen == [3, 5, 2, 7, 4, 1]
    for replica in (a, b):
        replica.provider.shutdown()


def test_cumulative_points_of_two_replicas_would_count_whole_lives() -> None:
    """Why the base sets delta: interleaved cumulative points are taken for restarts."""
    monitor = AppMetrics(100)
    a, b = Replica(AggregationTemporality.CUMULATIVE), Replica(AggregationTemporality.CUMULATIVE)
    seen = []
    for a_calls, b_calls in ((3, 5), (2, 7)):
        a.serve(a_calls)
        b.serve(b_calls)
        seen += [a.export(monitor), b.export(monitor)]
    assert seen == [3, 5, 5, 12], "totals since each replica started, not the interval's calls"
    for replica in (a, b):
        replica.provider.shutdown()

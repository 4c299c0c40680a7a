"""The OTLP metrics receiver: ``opentelemetry.proto.collector.metrics.v1.MetricsService/Export``.

It turns the protobuf request into plain metric batches (``app_metrics``) and hands them to the
monitor. The service label of every series is the resource's ``service.name`` without the
``mediasuite-`` prefix ("cache"). Limits against careless exporters: at most 16 attributes per
point (the rest are ignored), names of at most 100 characters, values cut at 200; samples beyond
the series limit are reported back as ``partial_success.rejected_data_points``. Summary metrics
and negative exponential buckets are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from services.monitor.app_metrics import HistogramPoint, Kind, MetricBatch, NumberPoint
from services.monitor.histograms import ExplicitBuckets, ExponentialBuckets
from services.monitor.monitor import Monitor
from services.monitor.series import LabelSet
from services.runtime.errors import LimitExceeded

__all__ = ["SERVICE_NAME", "MetricsReceiver", "batches", "count_points", "register"]

SERVICE_NAME = "opentelemetry.proto.collector.metrics.v1.MetricsService"
MAX_LABELS = 16
MAX_KEY = 100
MAX_VALUE = 200
_DELTA = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


def _labels(attributes: Iterable[KeyValue]) -> LabelSet:
    found: dict[str, str] = {}
    for kv in attributes:
        if len(found) >= MAX_LABELS:
            break
        value = kv.value
        which = value.WhichOneof("value")
        if which == "string_value":
            text = value.string_value
        elif which == "int_value":
            text = str(value.int_value)
        elif which == "bool_value":
            text = "true" if value.bool_value else "false"
        elif which == "double_value":
            text = f"{value.double_value:g}"
        else:
            continue
        found[kv.key[:MAX_KEY]] = text[:MAX_VALUE]
    return tuple(sorted(found.items()))


def _service(resource_attributes: Iterable[KeyValue]) -> str:
    for kv in resource_attributes:
        if kv.key == "service.name":
            return kv.value.string_value.removeprefix("mediasuite-")[:MAX_VALUE] or "unknown_service"
    return "unknown_service"


def _number(p: Any) -> float:
    return float(p.as_double) if p.WhichOneof("value") == "as_double" else float(p.as_int)


def count_points(request: metrics_service_pb2.ExportMetricsServiceRequest) -> int:
    """Data points in a request (cheap: lengths only)."""
    total = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                which = metric.WhichOneof("data")
                if which is not None:
                    total += len(getattr(metric, which).data_points)
    return total


def batches(request: metrics_service_pb2.ExportMetricsServiceRequest) -> list[MetricBatch]:
    """The request as plain metric batches, one per metric and resource."""
    out: list[MetricBatch] = []
    for resource_metrics in request.resource_metrics:
        service = _service(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                batch = _batch(service, metric)
                if batch is not None:
                    out.append(batch)
    return out


def _batch(service: str, metric: metrics_pb2.Metric) -> MetricBatch | None:
    which = metric.WhichOneof("data")
    name, unit, description = metric.name[:MAX_KEY], metric.unit[:MAX_KEY], metric.description[:MAX_VALUE]
    if which in ("gauge", "sum"):
        data = metric.gauge if which == "gauge" else metric.sum
        points = [
            NumberPoint(
                _labels(p.attributes), p.start_time_unix_nano / 1e9, p.time_unix_nano / 1e9, _number(p)
            )
            for p in data.data_points
        ]
        if which == "gauge":
            return MetricBatch(service, name, unit, description, Kind.GAUGE, points=points)
        return MetricBatch(
            service,
            name,
            unit,
            description,
            Kind.SUM,
            metric.sum.is_monotonic,
            metric.sum.aggregation_temporality == _DELTA,
            points,
        )
    if which == "histogram":
        hist = metric.histogram
        return MetricBatch(
            service,
            name,
            unit,
            description,
            Kind.HISTOGRAM,
            delta=hist.aggregation_temporality == _DELTA,
            points=[
                HistogramPoint(
                    _labels(p.attributes),
                    p.start_time_unix_nano / 1e9,
                    p.time_unix_nano / 1e9,
                    p.count,
                    p.sum,
                    ExplicitBuckets(tuple(p.explicit_bounds), list(p.bucket_counts)),
                )
                for p in hist.data_points
                if len(p.bucket_counts) == len(p.explicit_bounds) + 1
            ],
        )
    if which == "exponential_histogram":
        exp = metric.exponential_histogram
        return MetricBatch(
            service,
            name,
            unit,
            description,
            Kind.HISTOGRAM,
            delta=exp.aggregation_temporality == _DELTA,
            points=[
                HistogramPoint(
                    _labels(p.attributes),
                    p.start_time_unix_nano / 1e9,
                    p.time_unix_nano / 1e9,
                    p.count,
                    p.sum,
                    ExponentialBuckets(
                        p.scale, p.zero_count, p.positive.offset, list(p.positive.bucket_counts)
                    ),
                )
                for p in exp.data_points
            ],
        )
    return None


class MetricsReceiver:
    """The OTLP MetricsService: Export stores what the services send."""

    def __init__(self, monitor: Monitor, max_points: int) -> None:
        self._monitor = monitor
        self._max_points = max_points

    async def Export(
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        """Store the metrics; report samples dropped at the series limit as a partial success.

        A request of more than ``max_points`` points is refused whole (RESOURCE_EXHAUSTED): its
        conversion runs on the event loop, and a huge one would stall sampling and every call.
        """
        points = count_points(request)
        if points > self._max_points:
            raise LimitExceeded(
                "max_points_per_export",
                self._max_points,
                points,
                env="MONITOR_OTLP_MAX_POINTS",
                what="data points in one Export",
            )
        rejected = self._monitor.ingest(batches(request))
        response = metrics_service_pb2.ExportMetricsServiceResponse()
        if rejected:
            response.partial_success.rejected_data_points = rejected
            response.partial_success.error_message = (
                f"{rejected} sample(s) dropped: the monitor holds at most {self._monitor.store.series_limit} "
                "series (raise MONITOR_SERIES_LIMIT to allow more)"
            )
        return response


def register(receiver: MetricsReceiver, server: grpc.aio.Server) -> None:
    """Add the OTLP MetricsService to a server (the generated helper is untyped, so this is written out)."""
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                receiver.Export,
                request_deserializer=metrics_service_pb2.ExportMetricsServiceRequest.FromString,
                response_serializer=metrics_service_pb2.ExportMetricsServiceResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))

"""The monitor's own RPC metrics go straight into its store, not over OTLP to itself.

Exporting to its own port would make every shutdown end with a failed export (the server stops
before the meter provider flushes) and cost a loopback call per interval. Instead the monitor's
server gets a meter provider whose reader hands each collection to the monitor in-process: the
same OTLP encoding the exporter would send, then the same path as an Export call, on the event
loop. Histograms are exponential, as ``mediasuite up`` configures the other services.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.resources import SERVICE_NAME, Resource

from services.monitor.monitor import Monitor
from services.monitor.otlp import batches

__all__ = ["InProcessExporter", "self_meter_provider"]


class InProcessExporter(MetricExporter):
    """A metric exporter that hands the data to the monitor on its event loop."""

    def __init__(self, monitor: Monitor, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()})
        self._monitor = monitor
        self._loop = loop

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Encode as OTLP and ingest on the loop (called from the reader's thread)."""
        found = batches(encode_metrics(metrics_data))
        try:
            self._loop.call_soon_threadsafe(self._monitor.ingest, found)
        except RuntimeError:  # the loop has closed: the process is ending, nothing to keep
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing is buffered."""
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to release."""


def self_meter_provider(monitor: Monitor, service_name: str, interval: float) -> MeterProvider:
    """A meter provider feeding the monitor every ``interval`` seconds (call from the event loop)."""
    reader = PeriodicExportingMetricReader(
        InProcessExporter(monitor, asyncio.get_running_loop()), export_interval_millis=interval * 1000
    )
    return MeterProvider(resource=Resource.create({SERVICE_NAME: service_name}), metric_readers=[reader])

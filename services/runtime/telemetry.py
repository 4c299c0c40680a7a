"""OpenTelemetry for every process: traces and metrics configured by the standard OTEL_* variables.

Nothing is exported unless configured: tracing is on when OTEL_TRACES_EXPORTER says so, or when an
OTLP endpoint is given (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); the
same for metrics. With tracing off no span is made and no interceptor runs, so the hot path pays
nothing. The SDK itself reads the rest of the standard variables (OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER[_ARG], OTEL_BSP_*, OTEL_METRIC_EXPORT_INTERVAL,
OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_INSECURE ...).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider

from services.runtime.config import Env

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["Telemetry", "TelemetryConfig", "console_span_exporter", "setup_telemetry"]

log = logging.getLogger(__name__)

_EXPORTERS = ("otlp", "console", "none")


@dataclass(frozen=True)
class TelemetryConfig:
    """Which signals are exported where, read from the standard OTEL_* variables."""

    disabled: bool
    service_name: str
    traces_exporter: str
    metrics_exporter: str

    @classmethod
    def from_env(cls, env: Env, default_service_name: str, environ: Mapping[str, str]) -> TelemetryConfig:
        """Decide the exporters; an OTLP endpoint switches the signal on unless its exporter says none."""
        disabled = env.flag("OTEL_SDK_DISABLED", False, "turn all OpenTelemetry off")
        service_name = env.text("OTEL_SERVICE_NAME", default_service_name, "service.name resource attribute")
        endpoint = env.text(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "", "OTLP/gRPC endpoint for traces and metrics (http://host:4317)"
        )
        traces_endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
        metrics_endpoint = environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "")
        env.text(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "grpc",
            "OTLP transport (only grpc is installed)",
            choices=("grpc",),
        )
        traces = env.text(
            "OTEL_TRACES_EXPORTER",
            "otlp" if endpoint or traces_endpoint else "none",
            "where spans go; default otlp when an endpoint is set, else none",
            choices=_EXPORTERS,
        )
        metrics_exporter = env.text(
            "OTEL_METRICS_EXPORTER",
            "otlp" if endpoint or metrics_endpoint else "none",
            "where metrics go; default otlp when an endpoint is set, else none",
            choices=_EXPORTERS,
        )
        return cls(disabled, service_name, traces, metrics_exporter)


@dataclass
class Telemetry:
    """The providers a process uses. ``tracer_provider`` is None when tracing is off."""

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None

    @property
    def tracing(self) -> bool:
        """Whether spans are made (and interceptors installed)."""
        return self.tracer_provider is not None

    def meter(self, name: str) -> metrics.Meter:
        """A meter from our provider, or a no-op meter when metrics are off."""
        provider = self.meter_provider or metrics.NoOpMeterProvider()
        return provider.get_meter(name)

    def tracer(self, name: str) -> trace.Tracer:
        """A tracer from our provider, or a no-op tracer when tracing is off."""
        provider = self.tracer_provider or trace.NoOpTracerProvider()
        return provider.get_tracer(name)

    def shutdown(self) -> None:
        """Flush and stop exporters (spans and metrics still buffered are sent)."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def console_span_exporter(out: IO[str] | None = None) -> SpanExporter:
    """``OTEL_TRACES_EXPORTER=console``: one span per line of JSON on stdout (the SDK's default indents
    each over many lines), so a process's log can be searched by trace id and read back by
    ``mediactl trace``."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter(
        out=out if out is not None else sys.stdout, formatter=lambda span: span.to_json(indent=None) + "\n"
    )


def setup_telemetry(config: TelemetryConfig) -> Telemetry:
    """Build the providers the configuration asks for, and instrument redis-py when tracing."""
    if config.disabled:
        return Telemetry()
    resource = Resource.create({SERVICE_NAME: config.service_name})
    telemetry = Telemetry()
    if config.traces_exporter != "none":
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)
        exporter: SpanExporter
        if config.traces_exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            exporter = console_span_exporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        telemetry.tracer_provider = provider
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        instrumentor = RedisInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
    if config.metrics_exporter != "none":
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            MetricExporter,
            PeriodicExportingMetricReader,
        )

        metric_exporter: MetricExporter
        if config.metrics_exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            metric_exporter = OTLPMetricExporter()
        else:
            metric_exporter = ConsoleMetricExporter()
        telemetry.meter_provider = MeterProvider(
            resource=resource, metric_readers=[PeriodicExportingMetricReader(metric_exporter)]
        )
    log.info(
        "telemetry: traces %s, metrics %s",
        config.traces_exporter,
        config.metrics_exporter,
        extra={"fields": {"service_name": config.service_name}},
    )
    return telemetry

"""Test doubles for the monitor's Protocols: a clock the test moves and readings the test makes.

The monitor's domain code takes its time and its system readings through these Protocols, so
alert holds and rates can be tested without waiting; servers around them are real.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from services.monitor.sampling import CpuTimes, ProcessReading, SystemReading


@dataclass
class ManualClock:
    """A clock that moves only when told."""

    now: float = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def reading(
    *,
    busy: tuple[float, ...] = (0.0, 0.0),
    total: tuple[float, ...] = (100.0, 100.0),
    memory_percent: float = 40.0,
    disk: tuple[int, int] = (0, 0),
    net: tuple[int, int] = (0, 0),
    processes: tuple[ProcessReading, ...] = (),
) -> SystemReading:
    """A reading with the given counters (cores: busy and total seconds per core)."""
    return SystemReading(
        cores=tuple(CpuTimes(b, t) for b, t in zip(busy, total, strict=True)),
        memory_percent=memory_percent,
        memory_used_bytes=4 * 2**30,
        swap_percent=1.5,
        disk_read_bytes=disk[0],
        disk_write_bytes=disk[1],
        net_sent_bytes=net[0],
        net_recv_bytes=net[1],
        load=(0.5, 0.4, 0.3),
        processes=processes,
    )


@dataclass
class ScriptedReader:
    """Returns the readings it was given, then repeats the last one."""

    readings: list[SystemReading] = field(default_factory=lambda: [reading()])
    calls: int = 0

    def read(self) -> SystemReading:
        self.calls += 1
        if len(self.readings) > 1:
            return self.readings.pop(0)
        return replace(self.readings[0])


def gauge_request(
    name: str, values: Mapping[Any, float], *, service: str = "mediasuite-test"
) -> ExportMetricsServiceRequest:
    """An OTLP Export request carrying one gauge with a point per label set (tuples of (key, value))."""
    points = [
        NumberDataPoint(
            attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in labels],
            time_unix_nano=1,
            as_double=value,
        )
        for labels, value in values.items()
    ]
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(
                    attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]
                ),
                scope_metrics=[
                    ScopeMetrics(metrics=[Metric(name=name, unit="1", gauge=Gauge(data_points=points))])
                ],
            )
        ]
    )

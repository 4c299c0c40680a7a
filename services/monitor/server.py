"""The monitor process: builds its gRPC server and runs it (``mediasuite-monitor``).

One gRPC port serves MonitorService and the OTLP MetricsService (where the services export their
metrics); an HTTP port serves Prometheus' /metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

from mediasuite.monitor.v1 import monitor_service_pb2_grpc
from services.monitor import otlp
from services.monitor.alerts import AlertEngine
from services.monitor.config import MonitorConfig
from services.monitor.health import HealthChecker, Probe
from services.monitor.monitor import Monitor
from services.monitor.probes import GrpcHealthProbe, RedisProbe
from services.monitor.prometheus import MetricsHttpServer
from services.monitor.psutil_reader import PsutilReader
from services.monitor.sampling import Clock, SystemClock, SystemReader
from services.monitor.self_metrics import self_meter_provider
from services.monitor.series import SeriesStore
from services.monitor.servicer import MonitorServiceServicer
from services.runtime.app import run_service
from services.runtime.server import GrpcServer, ServiceBinding
from services.runtime.suite import process
from services.runtime.telemetry import Telemetry

__all__ = ["MonitorServer", "build_monitor", "build_server", "main"]

log = logging.getLogger("mediasuite.monitor")


class MonitorServer(GrpcServer):
    """The monitor's GrpcServer, holding the monitor and its /metrics server (for tests and benchmarks)."""

    monitor: Monitor
    metrics_http: MetricsHttpServer


def build_monitor(
    config: MonitorConfig, *, reader: SystemReader | None = None, clock: Clock | None = None
) -> Monitor:
    """The monitor's domain object from the configuration (tests may hand in a reader and a clock)."""
    store = SeriesStore(config.sample_interval, config.series_limit)
    engine = AlertEngine(config.rules, history_limit=config.alert_history, stale_after=config.stale_after)
    probes: list[Probe] = [
        GrpcHealthProbe(name, target.address, target.tls) for name, target in config.components.items()
    ]
    if config.redis_url:
        probes.append(RedisProbe(config.redis_url))
    return Monitor(
        store=store,
        engine=engine,
        reader=reader or PsutilReader(config.process_addresses),
        clock=clock or SystemClock(),
        health=HealthChecker(probes, config.health_timeout),
        sample_interval=config.sample_interval,
        stream_buffer=config.stream_buffer,
        rules_source=config.rules_source,
    )


async def build_server(
    config: MonitorConfig,
    telemetry: Telemetry,
    *,
    reader: SystemReader | None = None,
    clock: Clock | None = None,
) -> MonitorServer:
    """The monitor server, ready to start: sampling and /metrics start with it and stop after it."""
    monitor = build_monitor(config, reader=reader, clock=clock)
    servicer = MonitorServiceServicer(
        monitor,
        stream_min_interval=config.stream_min_interval,
        stream_max_interval=config.stream_max_interval,
    )
    receiver = otlp.MetricsReceiver(monitor, config.otlp_max_points)
    # The monitor's own RPC metrics go into its store in-process (self_metrics.py); tracing as configured.
    own = self_meter_provider(monitor, "mediasuite-monitor", config.sample_interval)
    telemetry = Telemetry(tracer_provider=telemetry.tracer_provider, meter_provider=own)
    server = MonitorServer(
        config.server,
        [
            ServiceBinding(
                "mediasuite.monitor.v1.MonitorService",
                partial(monitor_service_pb2_grpc.add_MonitorServiceServicer_to_server, servicer),
            ),
            ServiceBinding(otlp.SERVICE_NAME, partial(otlp.register, receiver)),
        ],
        telemetry=telemetry,
    )
    http = MetricsHttpServer(monitor.store, config.http_listen)
    server.monitor = monitor
    server.metrics_http = http

    async def start() -> None:
        await http.start()
        await monitor.start()
        log.info(
            "monitor: sampling every %gs, %d rules (%s), at most %d series (%.0f MiB of history at most)",
            config.sample_interval,
            len(config.rules),
            config.rules_source,
            config.series_limit,
            monitor.store.memory_bound / 2**20,
        )
        log.info(
            "monitor: health checks of %s",
            ", ".join(
                f"{name} at {target.address} ({'mTLS' if target.tls else 'plaintext'})"
                for name, target in config.components.items()
            )
            or "no suite process (MONITOR_CHECK=none)",
        )

    async def stop() -> None:
        await monitor.stop()
        await http.stop()
        own.shutdown(timeout_millis=1000)

    server.on_start(start)
    server.on_stop(stop)
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return run_service("monitor", process("monitor").summary, MonitorConfig.from_env, build_server, argv=argv)

"""gRPC server bootstrap shared by every service: health, reflection, interceptors, graceful stop.

``GrpcServer`` wraps a ``grpc.aio.Server`` with what every mediasuite service needs:

- grpc.health.v1 (Check and Watch) with a status per service and for the whole server ("");
- server reflection listing every service it serves;
- the suite's interceptor (errors to statuses, in-flight tracking, RPC metrics and, when tracing
  is on, a server span per call);
- configured message sizes, keepalive and a cap on concurrent calls;
- a graceful stop: health goes NOT_SERVING, (optionally) a drain delay while still serving, then
  no new calls, in-flight unary calls finish within the grace period, streams are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from services.runtime.config import ServerConfig
from services.runtime.interceptors import InflightTracker, ServerInterceptor
from services.runtime.telemetry import Telemetry

__all__ = ["GrpcServer", "ServiceBinding", "server_options"]

log = logging.getLogger("mediasuite.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service to serve: its full proto name and the function that registers it."""

    name: str
    register: Callable[[grpc.aio.Server], None]


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    """Channel arguments of a server built from the shared configuration."""
    keepalive_ms = int(config.keepalive_seconds * 1000)
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_pings_without_data", 0),
        # Two servers on one port must fail to start, not share the port silently.
        ("grpc.so_reuseport", 0),
    ]
    if config.max_connection_age_seconds > 0:
        # Clients reconnect (and re-resolve DNS) when a connection reaches its age: the way replicas
        # added behind a headless Service start getting calls from client-side round_robin.
        options += [
            ("grpc.max_connection_age_ms", int(config.max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(config.grace_seconds * 1000)),
        ]
    return options


class GrpcServer:
    """A running-or-ready gRPC server of one mediasuite process."""

    def __init__(
        self,
        config: ServerConfig,
        services: Sequence[ServiceBinding],
        *,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.config = config
        self.telemetry = telemetry or Telemetry()
        self.health = health_aio.HealthServicer()
        self.tracker = InflightTracker()
        self.service_names = [s.name for s in services]
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._stopping = False
        metrics_on = self.telemetry.meter_provider is not None
        interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = [
            ServerInterceptor(
                config.service,
                self.tracker,
                self.telemetry.meter("mediasuite.rpc") if metrics_on else None,
                self.telemetry.tracer("mediasuite.rpc") if self.telemetry.tracing else None,
            )
        ]
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=server_options(config),
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        )
        for binding in services:
            binding.register(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [
                *self.service_names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self.server,
        )
        self.port = _bind(self.server, config.listen, f"{config.service.upper()}_LISTEN", config)
        # Kubernetes' native gRPC probes speak plaintext only: with TLS on, they use this port.
        self.health_server: grpc.aio.Server | None = None
        self.health_port = 0
        if config.health_listen:
            self.health_server = grpc.aio.server(options=server_options(config))
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
            self.health_port = _bind(self.health_server, config.health_listen, "GRPC_HEALTH_LISTEN", None)

    def on_start(self, hook: Hook) -> None:
        """Run ``hook`` after the server starts, before it reports SERVING."""
        self._on_start.append(hook)

    def on_stop(self, hook: Hook) -> None:
        """Run ``hook`` after the server has stopped (close pools, flush state); last added runs first."""
        self._on_stop.append(hook)

    @property
    def address(self) -> str:
        """host:port actually bound (the real port when the configuration asked for port 0)."""
        host = self.config.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    @property
    def health_address(self) -> str | None:
        """host:port of the plaintext health-only port, when GRPC_HEALTH_LISTEN is set."""
        if self.health_server is None:
            return None
        return f"{self.config.health_listen.rpartition(':')[0]}:{self.health_port}"

    async def start(self) -> None:
        """Start serving, run the start hooks, then report SERVING for every service."""
        # The health servicer reports "" as SERVING from the start; until the start hooks have run
        # (a first sample, a cache warm-up) the process must say it is not ready yet.
        await self.set_serving(False)
        await self.server.start()
        if self.health_server is not None:
            await self.health_server.start()
        for hook in self._on_start:
            await hook()
        await self.set_serving(True)
        log.info(
            "serving %s on %s",
            ", ".join(self.service_names) or "health only",
            self.address,
            extra={"fields": {"address": self.address, "services": self.service_names}},
        )
        if self.health_address is not None:
            log.info("serving grpc.health.v1 (plaintext) on %s", self.health_address)

    async def set_serving(self, serving: bool, service: str | None = None) -> None:
        """Set the health status of one service, or of every service and the server ("")."""
        status = SERVING if serving else NOT_SERVING
        for name in [service] if service is not None else ["", *self.service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: NOT_SERVING, drain delay, refuse new calls, let unary calls finish."""
        if self._stopping:
            return
        self._stopping = True
        grace = self.config.grace_seconds if grace is None else grace
        started = time.monotonic()
        await self.health.enter_graceful_shutdown()
        log.info(
            "shutting down: NOT_SERVING, %d call(s) in flight, grace %.1fs",
            self.tracker.count,
            grace,
            extra={"fields": {"inflight": self.tracker.count}},
        )
        if self.config.drain_seconds > 0:
            await asyncio.sleep(self.config.drain_seconds)
        refusing = asyncio.create_task(self.server.stop(grace))
        drained = await self.tracker.wait_idle(grace)
        # Unary calls are done (or out of time): end what remains, such as watch streams, now.
        await self.server.stop(0)
        await refusing
        if self.health_server is not None:
            await self.health_server.stop(0)
        if not drained:
            log.warning("grace period of %.1fs passed with calls still in flight; they were cancelled", grace)
        for hook in reversed(self._on_stop):
            await hook()
        log.info("stopped after %.2fs", time.monotonic() - started)

    async def wait(self) -> None:
        """Wait until the server terminates."""
        await self.server.wait_for_termination()


def _bind(server: grpc.aio.Server, address: str, variable: str, config: ServerConfig | None) -> int:
    """Add a port (TLS when the configuration has it); OSError naming the variable when it fails."""
    try:
        if config is not None and config.tls is not None:
            return server.add_secure_port(address, config.tls.server_credentials())
        return server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(
            f"{variable} is {address!r}: cannot listen there ({error}); is another process using the port? "
            f"Set {variable} to a free host:port"
        ) from error

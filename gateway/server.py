"""The gateway process: an HTTP server (uvicorn) beside a gRPC server that serves its health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn

from gateway.app import create_app
from gateway.auth import RedactCredentials
from gateway.config import GatewayConfig
from services.runtime.app import run_service
from services.runtime.server import GrpcServer
from services.runtime.suite import process
from services.runtime.telemetry import Telemetry

__all__ = ["HttpServer", "build_server", "main"]

log = logging.getLogger("mediasuite.gateway")


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside our event loop: the runtime owns SIGTERM/SIGINT, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """An ASGI application served by uvicorn (httptools, websockets) in the running event loop."""

    def __init__(self, asgi: Any, listen: str, *, grace_seconds: float = 10.0) -> None:
        host, _, port = listen.rpartition(":")
        self.listen = listen
        self._server = _EmbeddedUvicorn(
            uvicorn.Config(
                asgi,
                host=host.strip("[]"),
                port=int(port),
                http="httptools",
                ws="websockets-sansio",
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=int(grace_seconds) or 1,
            )
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port actually bound (the real one when the listen address asked for port 0)."""
        sockets = self._server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """http://host:port of the running server."""
        host = self.listen.rpartition(":")[0]
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Start serving; OSError when the address cannot be bound."""
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it (e.g. the port is taken)
                raise OSError(
                    f"HTTP server on {self.listen} stopped during start-up: is the port in use? "
                    "Set GATEWAY_HTTP_LISTEN to a free address"
                )
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (within the grace period), close."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task


async def build_server(config: GatewayConfig, telemetry: Telemetry) -> GrpcServer:
    """The gateway: gRPC health on its gRPC port, HTTP on GATEWAY_HTTP_LISTEN, stopped together."""
    server = GrpcServer(config.server, [], telemetry=telemetry)
    # Libraries log request headers at debug level (the WebSocket handshake does): keys never pass.
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactCredentials())
    gateway = create_app(config, telemetry=telemetry)
    if config.auth:
        log.info("authentication on: %d API key(s)", len(config.keys))
    else:
        log.warning("authentication OFF: every caller has the admin scope (configure GATEWAY_API_KEYS)")
    log.info("%d HTTP routes from the service annotations", len(gateway.table.routes))
    http = HttpServer(gateway.asgi, config.http_listen, grace_seconds=config.server.grace_seconds)

    async def stop_http() -> None:
        await http.stop()
        await gateway.upstreams.close()

    server.on_start(http.start)
    server.on_stop(stop_http)
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return run_service("gateway", process("gateway").summary, GatewayConfig.from_env, build_server, argv=argv)

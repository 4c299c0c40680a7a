"""The gateway process: an HTTP server (uvicorn) beside a gRPC server that serves its health."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence

import uvicorn

from gateway.app import create_app
from gateway.config import GatewayConfig
from services.runtime.app import run_service
from services.runtime.server import GrpcServer
from services.runtime.suite import process
from services.runtime.telemetry import Telemetry

__all__ = ["build_server", "main"]


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside our event loop: the runtime owns SIGTERM/SIGINT, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def build_server(config: GatewayConfig, telemetry: Telemetry) -> GrpcServer:
    """The gateway: gRPC health on its gRPC port, HTTP on GATEWAY_HTTP_LISTEN, stopped together."""
    server = GrpcServer(config.server, [], telemetry=telemetry)
    host, _, port = config.http_listen.rpartition(":")
    http = _EmbeddedUvicorn(
        uvicorn.Config(
            create_app(),
            host=host.strip("[]"),
            port=int(port),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(config.server.grace_seconds) or 1,
        )
    )
    task: asyncio.Task[None] | None = None

    async def start_http() -> None:
        nonlocal task
        task = asyncio.create_task(http.serve())
        while not http.started:
            if task.done():
                task.result()  # raises what stopped it (e.g. the port is taken)
                raise OSError(f"HTTP server on {config.http_listen} stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop_http() -> None:
        http.should_exit = True
        if task is not None:
            await task

    server.on_start(start_http)
    server.on_stop(stop_http)
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return run_service("gateway", process("gateway").summary, GatewayConfig.from_env, build_server, argv=argv)

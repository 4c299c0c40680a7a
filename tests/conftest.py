"""Fixtures shared by every test: in-process gRPC servers on loopback built with the real runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from services.runtime.config import Env, ServerConfig
from services.runtime.server import GrpcServer, ServiceBinding
from services.runtime.telemetry import Telemetry


def server_config(service: str = "test", **env: str) -> ServerConfig:
    """Shared server settings for a test server on a free loopback port."""
    values = {f"{service.upper()}_LISTEN": "127.0.0.1:0", **env}
    return ServerConfig.from_env(Env(values), service, 0)


ServerFactory = Callable[..., AbstractAsyncContextManager[GrpcServer]]


@pytest.fixture
def grpc_server() -> ServerFactory:
    """``async with grpc_server(bindings, telemetry=..., **env) as server`` runs a real server."""

    @asynccontextmanager
    async def run(
        bindings: Sequence[ServiceBinding],
        *,
        telemetry: Telemetry | None = None,
        service: str = "test",
        **env: str,
    ) -> AsyncIterator[GrpcServer]:
        server = GrpcServer(server_config(service, **env), bindings, telemetry=telemetry)
        await server.start()
        try:
            yield server
        finally:
            await server.stop(grace=1.0)

    return run

"""A real processing server on loopback (worker processes, media root and derived store in tmp_path)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from mediasuite.processing.v1 import processing_service_pb2_grpc
from services.processing.config import ProcessingConfig
from services.processing.pool import WorkerPool
from services.processing.server import build_parts
from services.runtime.config import Env
from services.runtime.server import GrpcServer
from services.runtime.telemetry import Telemetry
from tests.support.processes import free_port


@dataclass
class Running:
    """A started processing server, a stub to it, and its directories."""

    server: GrpcServer
    pool: WorkerPool
    stub: processing_service_pb2_grpc.ProcessingServiceAsyncStub
    media: Path
    derived: Path

    def put(self, name: str, data: bytes) -> str:
        """Write a file under the media root; returns its relative path."""
        path = self.media / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return name


Factory = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def processing(tmp_path: Path) -> Factory:
    """``async with processing(**env) as svc``: a processing server with two worker processes and no
    cache unless the environment names one."""

    @asynccontextmanager
    async def run(telemetry: Telemetry | None = None, **env: str) -> AsyncIterator[Running]:
        media, derived = tmp_path / "media", tmp_path / "derived"
        media.mkdir(exist_ok=True)
        values = {
            "PROCESSING_LISTEN": "127.0.0.1:0",
            "PROCESSING_MEDIA_ROOT": str(media),
            "PROCESSING_DERIVED_ROOT": str(derived),
            "PROCESSING_WORKERS": "2",
            "PROCESSING_CACHE": "false",
            "CACHE_ADDR": f"127.0.0.1:{free_port()}",
            **env,
        }
        config = ProcessingConfig.from_env(Env(values))
        parts = build_parts(config, telemetry or Telemetry())
        server = parts.server
        await server.start()
        channel = grpc.aio.insecure_channel(server.address)
        try:
            yield Running(
                server, parts.pool, processing_service_pb2_grpc.ProcessingServiceStub(channel), media, derived
            )
        finally:
            await channel.close(None)
            await server.stop(grace=1.0)

    return run

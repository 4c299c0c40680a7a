"""A real batch server and a real processing server on loopback (in this process), a media root and
a derived store in tmp_path, and the shared Redis under a key prefix of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc
from services.batch.config import BatchConfig
from services.batch.server import Parts, build_parts
from services.processing.config import ProcessingConfig
from services.processing.server import build_parts as build_processing
from services.runtime.config import Env
from services.runtime.telemetry import Telemetry
from tests.support.processes import free_port
from tests.support.redis import SHARED_URL, delete_prefix, unique_prefix


@dataclass
class Suite:
    """A started batch server (with processing behind it) and stubs to it."""

    parts: Parts
    batch: batch_service_pb2_grpc.BatchServiceAsyncStub
    catalog: catalog_service_pb2_grpc.CatalogServiceAsyncStub
    media: Path
    derived: Path
    prefix: str
    redis_url: str
    processing_address: str


Factory = Callable[..., AbstractAsyncContextManager[Suite]]


@pytest.fixture
def batch_suite(tmp_path: Path) -> Factory:
    """``async with batch_suite(**env) as s``: processing (two workers, no cache) and batch."""

    @asynccontextmanager
    async def run(processing: bool = True, prefix: str = "", **env: str) -> AsyncIterator[Suite]:
        media, derived = tmp_path / "media", tmp_path / "derived"
        media.mkdir(exist_ok=True)
        derived.mkdir(exist_ok=True)
        prefix = prefix or unique_prefix("batch")
        processing_server = None
        processing_address = f"127.0.0.1:{free_port()}"
        if processing:
            values = {
                "PROCESSING_LISTEN": "127.0.0.1:0",
                "PROCESSING_MEDIA_ROOT": str(media),
                "PROCESSING_DERIVED_ROOT": str(derived),
                "PROCESSING_WORKERS": "2",
                "PROCESSING_CACHE": "false",
            }
            processing_server = build_processing(ProcessingConfig.from_env(Env(values)), Telemetry()).server
            await processing_server.start()
            processing_address = processing_server.address
        values = {
            "BATCH_LISTEN": "127.0.0.1:0",
            "REDIS_URL": SHARED_URL,
            "BATCH_KEY_PREFIX": prefix,
            "BATCH_MEDIA_ROOT": str(media),
            "BATCH_DERIVED_ROOT": str(derived),
            "PROCESSING_ADDR": processing_address,
            "CACHE_ADDR": f"127.0.0.1:{free_port()}",
            "BATCH_RETRY_BACKOFF": "20ms",
            "BATCH_PROGRESS_INTERVAL": "100ms",
            **env,
        }
        parts = build_parts(BatchConfig.from_env(Env(values)), Telemetry())
        await parts.server.start()
        channel = grpc.aio.insecure_channel(parts.server.address)
        try:
            yield Suite(
                parts,
                batch_service_pb2_grpc.BatchServiceStub(channel),
                catalog_service_pb2_grpc.CatalogServiceStub(channel),
                media,
                derived,
                prefix,
                SHARED_URL,
                processing_address,
            )
        finally:
            await channel.close(None)
            await parts.server.stop(grace=1.0)
            if processing_server is not None:
                await processing_server.stop(grace=1.0)
            delete_prefix(SHARED_URL, prefix)

    return run

"""Client channels give calls a default deadline; servers refuse messages above the configured size."""

from __future__ import annotations

import time
from functools import partial

import grpc
import pytest

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from services.runtime.clients import open_channel
from services.runtime.server import ServiceBinding
from tests.conftest import ServerFactory
from tests.support.fakes import SleepyCache

BINDING = ServiceBinding(
    "mediasuite.cache.v1.CacheService",
    partial(cache_service_pb2_grpc.add_CacheServiceServicer_to_server, SleepyCache()),  # type: ignore[abstract]
)


async def test_default_deadline_applies_when_the_caller_sets_none(grpc_server: ServerFactory) -> None:
    async with grpc_server([BINDING]) as server:
        channel = open_channel(server.address, deadline_seconds=0.3)
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Get(cache_service_pb2.GetRequest(key="5"))
        elapsed = time.monotonic() - started
        fast = await stub.Get(cache_service_pb2.GetRequest(key="0"))
        explicit = await stub.Get(cache_service_pb2.GetRequest(key="0.5"), timeout=3)
        await channel.close(None)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 3, "the default deadline (0.3 s), not the server's 5 s sleep, ended the call"
    assert fast.found
    assert explicit.value == b"0.5", "a caller's own deadline wins over the default"


async def test_message_above_the_configured_size_is_refused(grpc_server: ServerFactory) -> None:
    async with (
        grpc_server([BINDING], GRPC_MAX_MESSAGE_BYTES="64KiB") as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Get(cache_service_pb2.GetRequest(key="0", namespace="x" * 100_000), timeout=5)
        small = await stub.Get(cache_service_pb2.GetRequest(key="0", namespace="x" * 1000), timeout=5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert small.found


def test_service_config_without_retries_for_fail_fast_dependencies() -> None:
    import json

    from services.runtime.clients import service_config

    assert "retryPolicy" in json.loads(service_config())["methodConfig"][0]
    assert "retryPolicy" not in json.loads(service_config(max_attempts=1))["methodConfig"][0]

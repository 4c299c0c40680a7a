"""The batch service's calls to processing: retries of UNAVAILABLE, DEADLINE_EXCEEDED and
RESOURCE_EXHAUSTED with backoff (never of INVALID_ARGUMENT), a deadline per attempt. A real gRPC
server whose processing servicer fails on purpose stands in for an overloaded replica (a real one
cannot be made to fail a chosen way on cue)."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

import pytest

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from mediasuite.processing.v1 import processing_service_pb2 as pb
from mediasuite.processing.v1 import processing_service_pb2_grpc
from services.batch.config import BatchConfig
from services.batch.processing_client import ProcessingClient
from services.batch.work import ItemFailure
from services.runtime.config import Env
from services.runtime.errors import InvalidArgument, LimitExceeded, Unavailable
from services.runtime.server import ServiceBinding
from tests.conftest import ServerFactory
from tests.service.batch.conftest import Factory
from tests.support.batch import IMPORT_LIBRARY, finished, make_tree, run_batch


class Flaky(processing_service_pb2_grpc.ProcessingServiceServicer):
    """Probe: fails ``failures`` times with ``error`` (or sleeps ``sleep`` seconds), then answers."""

    def __init__(self, failures: int, error: Exception | None = None, sleep: float = 0.0) -> None:
        self.failures = failures
        self.error = error
        self.sleep = sleep
        self.calls: list[float] = []

    async def Probe(self, request: pb.ProbeRequest, context: Any) -> pb.ProbeResponse:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            if self.sleep:
                await asyncio.sleep(self.sleep)
            if self.error is not None:
                raise self.error
        return pb.ProbeResponse(info=pb.MediaInfo(format="JPEG", width=4, height=3))


def _execution(**env: str) -> Any:
    values = {"BATCH_ITEM_ATTEMPTS": "4", "BATCH_RETRY_BACKOFF": "40ms", **env}
    return BatchConfig.from_env(Env(values)).execution


@pytest.mark.parametrize(
    "error",
    [
        Unavailable("replica restarting"),
        LimitExceeded("queue_size", 64, 65, env="PROCESSING_QUEUE_SIZE"),
    ],
    ids=["unavailable", "resource-exhausted"],
)
async def test_retryable_failures_are_retried_with_backoff(
    grpc_server: ServerFactory, error: Exception
) -> None:
    flaky = Flaky(2, error)  # type: ignore[abstract]
    binding = ServiceBinding(
        "mediasuite.processing.v1.ProcessingService",
        partial(processing_service_pb2_grpc.add_ProcessingServiceServicer_to_server, flaky),
    )
    async with grpc_server([binding]) as server:
        client = ProcessingClient(server.address, _execution())
        try:
            reply, attempts = await client.invoke("Probe", pb.ProbeRequest(), 5.0)
        finally:
            await client.close()
    assert reply.info.format == "JPEG"
    assert attempts == 3
    assert len(flaky.calls) == 3


async def test_invalid_argument_is_never_retried(grpc_server: ServerFactory) -> None:
    flaky = Flaky(10, InvalidArgument("not an image", field="media.path"))  # type: ignore[abstract]
    binding = ServiceBinding(
        "mediasuite.processing.v1.ProcessingService",
        partial(processing_service_pb2_grpc.add_ProcessingServiceServicer_to_server, flaky),
    )
    async with grpc_server([binding]) as server:
        client = ProcessingClient(server.address, _execution())
        try:
            with pytest.raises(ItemFailure) as caught:
                await client.invoke("Probe", pb.ProbeRequest(), 5.0)
        finally:
            await client.close()
    assert (caught.value.code_name, caught.value.attempts, len(flaky.calls)) == ("INVALID_ARGUMENT", 1, 1)


async def test_each_attempt_has_the_item_deadline_and_attempts_are_bounded(
    grpc_server: ServerFactory,
) -> None:
    flaky = Flaky(10, sleep=1.0)  # type: ignore[abstract]
    binding = ServiceBinding(
        "mediasuite.processing.v1.ProcessingService",
        partial(processing_service_pb2_grpc.add_ProcessingServiceServicer_to_server, flaky),
    )
    async with grpc_server([binding]) as server:
        client = ProcessingClient(server.address, _execution(BATCH_ITEM_ATTEMPTS="3"))
        try:
            with pytest.raises(ItemFailure) as caught:
                await client.invoke("Probe", pb.ProbeRequest(), 0.1)
        finally:
            await client.close()
    assert (caught.value.code_name, caught.value.attempts) == ("DEADLINE_EXCEEDED", 3)
    assert len(flaky.calls) == 3


class Capabilities(processing_service_pb2_grpc.ProcessingServiceServicer):
    """GetCapabilities names one preset and records the deadline each call arrived with; ProbeMany
    answers a small JPEG for every path (so an import fills the catalog)."""

    def __init__(self) -> None:
        self.remaining: list[float] = []

    async def ProbeMany(self, request: pb.ProbeManyRequest, context: Any) -> pb.ProbeManyResponse:
        return pb.ProbeManyResponse(
            results=[
                pb.ProbeManyResult(info=pb.MediaInfo(format="JPEG", width=4, height=3, content_hash=f"h{i}"))
                for i, _ in enumerate(request.media)
            ]
        )

    async def GetCapabilities(self, request: Any, context: Any) -> pb.GetCapabilitiesResponse:
        self.remaining.append(context.time_remaining())
        return pb.GetCapabilitiesResponse(presets=[pb.Preset(name="tiny", long_edge=64)])


@pytest.mark.parametrize(
    ("env", "spec_deadline", "expected"),
    [({"BATCH_ITEM_DEADLINE": "3s"}, 0.0, 3.0), ({}, 2.0, 2.0)],
    ids=["BATCH_ITEM_DEADLINE", "spec.item_deadline"],
)
async def test_the_preset_lookup_has_the_batchs_item_deadline(
    grpc_server: ServerFactory,
    batch_suite: Factory,
    env: dict[str, str],
    spec_deadline: float,
    expected: float,
) -> None:
    """A thumbnail batch checks its presets with processing when it starts: each attempt of that
    lookup has the deadline the batch's items get, not a fixed one."""
    capabilities = Capabilities()  # type: ignore[abstract]
    binding = ServiceBinding(
        "mediasuite.processing.v1.ProcessingService",
        partial(processing_service_pb2_grpc.add_ProcessingServiceServicer_to_server, capabilities),
    )
    spec = bpb.BatchSpec(
        process=bpb.ProcessOperation(thumbnail=bpb.ThumbnailOperation(presets=["tiny"])),
        selection=bpb.Selection(query=cpb.CatalogFilter(kind=cpb.MEDIA_KIND_IMAGE)),
    )
    if spec_deadline:
        spec.item_deadline.FromNanoseconds(int(spec_deadline * 1e9))
    async with (
        grpc_server([binding]) as server,
        batch_suite(processing=False, PROCESSING_ADDR=server.address, **env) as suite,
    ):
        make_tree(suite.media, images=1)
        assert finished(await run_batch(suite.batch, IMPORT_LIBRARY)).done == 1
        await suite.batch.StartBatch(bpb.StartBatchRequest(spec=spec))
    (remaining,) = capabilities.remaining
    assert remaining == pytest.approx(expected, abs=0.5)  # was 10 s whatever the batch said

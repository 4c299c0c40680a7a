"""The runtime's interceptor turns domain errors into status codes with actionable messages."""

from __future__ import annotations

import logging
from functools import partial

import grpc
import pytest
import redis
from google.rpc import error_details_pb2

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from mediasuite.processing.v1 import processing_service_pb2 as pb
from mediasuite.processing.v1 import processing_service_pb2_grpc as pb_grpc
from services.runtime.server import ServiceBinding
from tests.conftest import ServerFactory
from tests.support.fakes import FailingProcessing
from tests.support.grpc_errors import detail

BINDING = ServiceBinding(
    "mediasuite.processing.v1.ProcessingService",
    partial(pb_grpc.add_ProcessingServiceServicer_to_server, FailingProcessing()),  # type: ignore[abstract]
)


async def _call(grpc_server: ServerFactory, name: str, request: object) -> grpc.aio.AioRpcError:
    async with grpc_server([BINDING]) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.ProcessingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(stub, name)(request, timeout=5)
    return caught.value


async def test_invalid_argument_names_the_field(grpc_server: ServerFactory) -> None:
    error = await _call(grpc_server, "Probe", pb.ProbeRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "") == "media.path must not be empty"
    bad_request = detail(error, error_details_pb2.BadRequest)
    assert bad_request is not None
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("media.path", "media.path must not be empty")
    ]


async def test_limit_is_resource_exhausted_naming_limit_and_variable(grpc_server: ServerFactory) -> None:
    error = await _call(grpc_server, "Thumbnail", pb.ThumbnailRequest())
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (error.details() or "") == (
        "image pixels (120000000) exceeds the limit max_pixels=50000000; "
        "raise PROCESSING_MAX_PIXELS to allow more"
    )
    info = detail(error, error_details_pb2.ErrorInfo)
    assert info is not None
    assert info.reason == "LIMIT_EXCEEDED"
    assert info.metadata["limit"] == "max_pixels"
    assert info.metadata["env"] == "PROCESSING_MAX_PIXELS"


async def test_unexpected_error_is_internal_without_details_but_logged(
    grpc_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mediasuite.rpc"):
        error = await _call(grpc_server, "Convert", pb.ConvertRequest())
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "secret internal detail" not in (error.details() or "")
    assert "Traceback" not in (error.details() or "")
    error_id = (error.details() or "").split("error id ")[1].split(")")[0]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged, "the error id in the status must be in the log"
    assert logged[0].exc_info is not None
    assert "secret internal detail" in str(logged[0].exc_info[1])


async def test_timeout_is_deadline_exceeded(grpc_server: ServerFactory) -> None:
    error = await _call(grpc_server, "ExtractFrames", pb.ExtractFramesRequest())
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "decoder took longer than 30s" in (error.details() or "")


async def test_rpc_not_built_is_unimplemented_saying_so(grpc_server: ServerFactory) -> None:
    error = await _call(grpc_server, "Optimize", pb.OptimizeRequest())
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert (error.details() or "").startswith(
        "/mediasuite.processing.v1.ProcessingService/Optimize is not implemented"
    )


async def test_unknown_service_is_unimplemented(grpc_server: ServerFactory) -> None:
    async with grpc_server([BINDING]) as server, grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await cache_service_pb2_grpc.CacheServiceStub(channel).Get(
                cache_service_pb2.GetRequest(), timeout=5
            )
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    "error",
    [redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused."),
     redis.exceptions.TimeoutError("Timeout reading from socket"),
     ConnectionRefusedError(111, "Connection refused")],
)  # fmt: skip
async def test_an_unreachable_dependency_is_unavailable_not_internal(
    grpc_server: ServerFactory, error: Exception
) -> None:
    async def fail(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        raise error

    handler = grpc.method_handlers_generic_handler(
        "test.Dep", {"Call": grpc.unary_unary_rpc_method_handler(fail)}
    )
    binding = ServiceBinding("test.Dep", lambda server: server.add_generic_rpc_handlers((handler,)))
    async with grpc_server([binding]) as server, grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/test.Dep/Call", None, None)(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "a dependency of the service is unreachable" in (caught.value.details() or "")
    assert "retry" in (caught.value.details() or "")

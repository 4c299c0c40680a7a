"""Corrupt images through the real processing service: hypothesis flips bits in, truncates, and
overwrites stretches of valid JPEG, PNG, WebP, GIF (animated too) and TIFF files, and sends each
to Probe (with both hashes, which decodes the pixels) or Thumbnail.

Every call ends within its deadline with a result or a clear error (INVALID_ARGUMENT naming the
field, RESOURCE_EXHAUSTED naming the limit, DEADLINE_EXCEEDED from the operation's own time
limit, or ABORTED when a decoder took its worker down), never INTERNAL or UNKNOWN, and the
service answers a good call after every corrupt one.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from mediasuite.processing.v1 import processing_service_pb2_grpc
from tests.support import media as M
from tests.support.processes import Running, service_process

pytestmark = pytest.mark.slow

SOURCES = {
    "jpeg": M.save(M.photo(160, 120), "JPEG", quality=85, progressive=True),
    "png": M.save(M.photo(120, 90), "PNG"),
    "webp": M.save(M.photo(120, 90), "WEBP", quality=80),
    "gif": M.animated("GIF", frames=3, size=(64, 48)),
    "tiff": M.save(M.photo(96, 72), "TIFF", compression="tiff_lzw"),
}
GOOD = SOURCES["jpeg"]
CALL_DEADLINE_S = 20.0  # above PROCESSING_OPERATION_TIMEOUT below: the service's own limit answers first
CLEAR = {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED", "FAILED_PRECONDITION"}


@st.composite
def corrupt(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid file of some format with bit flips, a truncation and/or an overwritten stretch."""
    name = draw(st.sampled_from(sorted(SOURCES)))
    data = bytearray(SOURCES[name])
    for position, bit in draw(
        st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)), max_size=12)
    ):
        data[position] ^= 1 << bit
    if draw(st.booleans()):
        start = draw(st.integers(0, len(data) - 1))
        junk = draw(st.binary(min_size=1, max_size=64))
        data[start : start + len(junk)] = junk
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data) - 1))]
    return name, bytes(data)


@pytest.fixture(scope="module")
def processing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, grpc.Channel]]:
    directory = tmp_path_factory.mktemp("fuzz-images")
    (directory / "media").mkdir()
    with (
        service_process(
            "processing",
            directory,
            PROCESSING_MEDIA_ROOT=str(directory / "media"),
            PROCESSING_DERIVED_ROOT=str(directory / "derived"),
            PROCESSING_WORKERS="2",
            PROCESSING_CACHE="false",
            PROCESSING_OPERATION_TIMEOUT="10s",
        ) as running,
        grpc.insecure_channel(running.address) as channel,
    ):
        yield running, channel


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sample=corrupt(), thumbnail=st.booleans())
def test_corrupt_images_get_a_result_or_a_clear_error_and_the_service_keeps_serving(
    processing: tuple[Running, grpc.Channel], sample: tuple[str, bytes], thumbnail: bool
) -> None:
    running, channel = processing
    stub = processing_service_pb2_grpc.ProcessingServiceStub(channel)
    name, data = sample
    ref = media_pb2.MediaRef(inline=data)
    try:
        if thumbnail:
            reply = stub.Thumbnail(pb.ThumbnailRequest(media=ref, preset="tiny"), timeout=CALL_DEADLINE_S)
            assert reply.output.width > 0 or reply.output.height > 0
            event(f"{name}: thumbnail made")
        else:
            stub.Probe(
                pb.ProbeRequest(media=ref, content_hash=True, perceptual_hash=True), timeout=CALL_DEADLINE_S
            )
            event(f"{name}: probed")
    except grpc.RpcError as error:
        code, details = error.code().name, error.details() or ""
        assert code in CLEAR, f"{name} ({len(data)} bytes): {code} {details}"
        event(f"{name}: {code}")
        assert details, f"{name}: {code} says why"
        assert details != "Deadline Exceeded", f"{name}: the service answered before the caller's deadline"
    assert running.popen.poll() is None, "the service is alive"
    good = stub.Thumbnail(
        pb.ThumbnailRequest(media=media_pb2.MediaRef(inline=GOOD), preset="tiny"), timeout=30
    )
    assert good.output.width == 64
